/*
 * test_converge.c - seeded convergence simulation (docs/reliability.md A1,
 * A2, A4, with the checker of its section 3), and regression tests for
 * what it found.
 *
 * Per seed: a hub and four branches (node directories on tmpfs, real
 * stores, replication and conflict code, driven through the test fixture
 * and the core API; sim.h) paired hub-and-spoke, plus
 * direct branch-to-branch links in mesh (odd) seeds.  A seeded PRNG drives
 * 200-400 steps: local transactions of 1-3 puts/deletes on a small pool of
 * records so that edits collide (values of every scalar type), concurrent
 * edits of one field on several nodes, exchanges along random links in
 * random directions whose sets are dropped, duplicated, reordered or mixed
 * with sets of older exchanges, whole exchanges lost in transit, replays of
 * whole old exchanges, clock steps (one node 5 minutes ahead in every 4th
 * seed, so that sets are held), and backups followed later by restores.
 * Then the faults heal: clean rounds hub <-> every branch until nothing
 * moves (at most FINAL_ROUNDS).
 *
 * The checker (end of run):
 *  - S7: equal digests on all nodes, equal stream tables (no gap), nothing
 *    held back or quarantined, everyone joined; the digest is the one
 *    docs/protocol.md specifies for the expected records (and mid-run, two
 *    nodes' digests are equal exactly when their live records are);
 *  - every acknowledged write survives unless every copy of it was rolled
 *    back by restores (a write no other node had received, or held back,
 *    when its holders were restored may be lost);
 *  - the exact final state: every node's live records equal field-LWW over
 *    the surviving writes, with each write's real version (HLC, then
 *    origin || incarnation, then seq, as record.h orders them): no lost
 *    update, no phantom value, no resurrection;
 *  - a concurrent edit forced through the hub is a conflict the hub records.
 * During the run: a local write's version, read back from the signed
 * change in the log, is newer than every version its node held for that
 * record (causality, reliability.md P4) and is the version its record now
 * holds; a new exchange is never taken for a replay; replaying an old
 * exchange the receiver took is a no-op (INV-3: the whole store's
 * fingerprint, so digest, streams, log, held sets and conflicts,
 * unchanged); the only refusals are the legitimate ones (a gap, a member
 * not yet introduced, a first exchange not from the hub).
 *
 * Not covered: tombstone purge (safe only while the retention limit exceeds
 * every propagation delay, and a stale peer's full resync is not enforced),
 * ACLs, priority/manual policies, crashes inside a transaction.
 *
 * Environment: BS_SEED=n runs seed n only (in both randomized tests);
 * BS_SEEDS=n runs seeds 1..n; BS_SIM_VERBOSE=1 narrates the run;
 * BS_SIM_STATS=1 prints what the run exercised; BS_SIM_AVOID=multiwrite
 * (one write per transaction) and/or prejoin (no backups before joining)
 * steer clear of bugs found before (fixed, and pinned by the tests
 * two_records_one_txn_* and restore_before_join_*), to look past them
 * should they come back.
 */
#include "sim.h"

#include <stdlib.h>

/* Seeds per run: sanitizer builds run ~4x slower, so they run fewer by
 * default (BS_SEEDS overrides) to stay within ctest's 300 s timeout. */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define SANITIZED 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
#define DEFAULT_SEEDS 50
#define DETERMINISM_N 4
#else
#define DEFAULT_SEEDS 200
#define DETERMINISM_N 10
#endif
#define FINAL_ROUNDS  10
#define NCOLL_MAX     3
#define NIDS          8  /* shared pool of record ids: edits collide */
#define ID_FORCED     16 /* ids from here: one per forced conflict */
#define ID_MAX        32
#define NFIELDS       5
#define MAX_OPS       4
#define MAX_FIELDS    4
#define HOLD_AHEAD_MS (5 * 60 * 1000)

static const char *const field_name[NFIELDS] = {"a", "b", "c", "d", "e"};

/* ---- the model: every acknowledged write ---- */

typedef struct mval {
    uint8_t type;
    int64_t i;
    double d;
    char s[40];
} mval;

typedef struct mwrite {
    int node;
    uint8_t key[SIM_KEYLEN]; /* writer's origin || incarnation */
    uint64_t seq, hlc;
    int coll, id, del, nf;
    uint8_t f[MAX_FIELDS]; /* field indexes, ascending */
    mval v[MAX_FIELDS];
    int lost_ok; /* every copy was rolled back by a restore at some point */
} mwrite;

typedef struct params {
    int steps, ncoll, mesh, ahead, forced_at;
    unsigned p_lose, p_drop, p_dup, p_swap, p_inject; /* per mille */
} params;

typedef struct stats {
    uint64_t writes, noops, exchanges, lost_msgs, sets_applied, refused_gap,
        refused_member, replays, replays_new, restores, backups, probes, held,
        conflicts_hub, final_rounds, lost_writes;
} stats;

typedef struct sim {
    sim_world w;
    params p;
    mwrite *m;
    size_t nm, capm;
    uint64_t vcount;
    int nforced;
    long forced_w[2]; /* model indexes of the forced conflict's writes */
    char last[400];   /* what the last exchange did, if anything */
    stats st;
} sim;

static int
ver_cmp(const mwrite *a, const mwrite *b)
{
    int c;

    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if ((c = memcmp(a->key, b->key, SIM_KEYLEN)) != 0)
        return c < 0 ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

static void
coll_name(char *buf, int c)
{
    snprintf(buf, 16, "c%d", c);
}

static void
id_name(char *buf, int id)
{
    if (id < ID_FORCED)
        snprintf(buf, 16, "r%d", id);
    else
        snprintf(buf, 16, "k%d", id - ID_FORCED);
}

static bs_value
mval_value(const mval *v)
{
    bs_value b;

    memset(&b, 0, sizeof b);
    b.type = v->type;
    b.i = v->i;
    b.d = v->d;
    if (v->type == BS_VTEXT) {
        b.s = v->s;
        b.len = (uint32_t)strlen(v->s);
    }
    return b;
}

/* A canonical text of a value (reals by their bits). */
static size_t
value_str(char *buf, size_t n, const bs_value *v)
{
    uint64_t bits;

    switch (v->type) {
    case BS_VNULL:
        return (size_t)snprintf(buf, n, "n");
    case BS_VFALSE:
        return (size_t)snprintf(buf, n, "F");
    case BS_VTRUE:
        return (size_t)snprintf(buf, n, "T");
    case BS_VINT:
        return (size_t)snprintf(buf, n, "i%lld", (long long)v->i);
    case BS_VREAL:
        memcpy(&bits, &v->d, 8);
        return (size_t)snprintf(buf, n, "r%016llx", (unsigned long long)bits);
    case BS_VTEXT: { /* printable ASCII as is, other bytes as \xNN */
        size_t k = (size_t)snprintf(buf, n, "s%u:", v->len);
        for (uint32_t i = 0; i < v->len && k + 5 < n; i++) {
            unsigned char c = (unsigned char)v->s[i];
            k += (size_t)snprintf(
                buf + k, n - k,
                c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        }
        return k;
    }
    default:
        return (size_t)snprintf(buf, n, "?%u", v->type);
    }
}

static void
gen_value(sim *s, mval *v)
{
    static const char *const pool[] = {"", "x", "h\xc3\xa9llo",
                                       "\xe2\x9c\x93 ok"};
    uint64_t *r = &s->w.rng;

    memset(v, 0, sizeof *v);
    switch (sim_below(r, 8)) {
    case 0:
        v->type = BS_VNULL;
        break;
    case 1:
        v->type = BS_VFALSE;
        break;
    case 2:
        v->type = BS_VTRUE;
        break;
    case 3: /* small: equal values on different nodes */
        v->type = BS_VINT;
        v->i = (int64_t)sim_below(r, 7) - 3;
        break;
    case 4:
        v->type = BS_VINT;
        v->i = (int64_t)sim_mix(r);
        break;
    case 5:
        v->type = BS_VREAL;
        v->d = (double)((int64_t)sim_below(r, 2000001) - 1000000) / 64.0;
        break;
    case 6:
        v->type = BS_VTEXT;
        snprintf(v->s, sizeof v->s, "v%llu", (unsigned long long)++s->vcount);
        break;
    default:
        v->type = BS_VTEXT;
        snprintf(v->s, sizeof v->s, "%s", pool[sim_below(r, 4)]);
        break;
    }
}

/* ---- local writes ---- */

typedef struct wop {
    int del, coll, id, nf;
    uint8_t f[MAX_FIELDS];
    mval v[MAX_FIELDS];
} wop;

/*
 * The greatest version (hlc) node `node` holds of record coll/id, taken
 * from the model: the acknowledged writes of that record whose position
 * in their stream the node holds (tab: its stream table).  A record keeps
 * the greatest version of every field, upsert and delete it merged
 * (record.h) and nothing is purged here, so this is every version the
 * node held for that record: a local write must order after it (P4).
 */
static uint64_t
seen_hlc(const sim *s, bs_streamtab *tab, int coll, int id)
{
    uint64_t m = 0;

    for (size_t x = 0; x < s->nm; x++) {
        const mwrite *mw = &s->m[x];
        if (mw->coll == coll && mw->id == id && mw->hlc > m &&
            sim_tab_seq(tab, mw->key) >= mw->seq)
            m = mw->hlc;
    }
    return m;
}

/* 1 when change c is what op o writes. */
static int
change_is_op(const bs_change *c, const wop *o)
{
    char coll[16], id[16];

    coll_name(coll, o->coll);
    id_name(id, o->id);
    if (strcmp(c->coll, coll) != 0 || strcmp(c->id, id) != 0 ||
        c->deleted != o->del || (!o->del && c->nfields != (size_t)o->nf))
        return 0;
    for (int i = 0; !o->del && i < o->nf; i++) {
        bs_value v = mval_value(&o->v[i]);
        if (strcmp(c->fields[i].name, field_name[o->f[i]]) != 0 ||
            !bs_value_eq(&c->fields[i].val, &v))
            return 0;
    }
    return 1;
}

/* Is coll/id live on the node (read txn t)? */
static int
live(sim *s, bs_txn *t, int coll, int id)
{
    char cn[16], in[16];
    bs_arena a;
    bs_record r;
    bs_err rv;

    coll_name(cn, coll);
    id_name(in, id);
    bs_arena_init(&a);
    rv = bs_records_get(t, cn, in, &a, &r, NULL);
    bs_arena_fini(&a);
    SIM_CHECK(&s->w, rv == BS_OK || rv == BS_ENOTFOUND, "%s/%s: %s", cn, in,
              bs_strerror(rv));
    return rv == BS_OK;
}

typedef struct wbatch {
    bs_write w[MAX_OPS];
    bs_field f[MAX_OPS][MAX_FIELDS];
    char coll[MAX_OPS][16], id[MAX_OPS][16];
    int op[MAX_OPS]; /* which op each write is */
    int nw, skipped;
} wbatch;

/*
 * The writes of ops as bs_records_write takes them, leaving out a delete
 * of a record that is not live at that point of the transaction (the
 * core refuses it with BS_ENOTFOUND: nothing to write, a no-op here).
 */
static void
batch_of(sim *s, int node, const wop *ops, int n, wbatch *b)
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    int alive[MAX_OPS];

    memset(b, 0, sizeof *b);
    SIM_OK(&s->w, bs_store_read(s->w.node[node].t.n->store, &t, &err), &err);
    for (int k = 0; k < n; k++) {
        const wop *o = &ops[k];
        int j, now = -1;

        for (j = k - 1; j >= 0 && now < 0; j--) /* as the batch left it */
            if (ops[j].coll == o->coll && ops[j].id == o->id && alive[j] >= 0)
                now = alive[j];
        if (now < 0)
            now = live(s, t, o->coll, o->id);
        alive[k] = o->del ? (now ? 0 : -1) : 1; /* -1: skipped */
        if (alive[k] < 0) {
            b->skipped++;
            continue;
        }
        coll_name(b->coll[b->nw], o->coll);
        id_name(b->id[b->nw], o->id);
        for (int i = 0; i < o->nf; i++) {
            bs_field *f = &b->f[b->nw][i];
            f->name = field_name[o->f[i]];
            f->namelen = (uint16_t)strlen(f->name);
            f->val = mval_value(&o->v[i]);
        }
        b->w[b->nw] = (bs_write){b->coll[b->nw], b->id[b->nw], o->del,
                                 b->f[b->nw], (size_t)o->nf};
        b->op[b->nw++] = k;
    }
    bs_txn_abort(t);
}

/*
 * Read back what the write made of ops (stream position pos0 before it):
 * the changes of its sets in the log, one per written op in op order (a
 * put that changed nothing is skipped, P3), each with its seq and hlc;
 * and check each is newer than every version its node held for that
 * record (causality, P4), the clock persisted and the records as written.
 */
static void
read_back(sim *s, int node, const wbatch *b, const wop *ops, uint64_t pos0,
          const bs_write_stats *st, mwrite *out, int *nout)
{
    sim_node *nd = &s->w.node[node];
    bs_meta m = sim_meta(&s->w, node);
    bs_errbuf err = {{0}};
    bs_streamtab tab;
    bs_stream *self;
    uint64_t from = pos0, seen[MAX_OPS], prev = 0;
    bs_change ch[MAX_OPS];
    bs_csview *v[MAX_OPS];
    size_t nch = 0, nv = 0;
    bs_arena a;
    bs_txn *t;
    int c = 0, trailing_noop = 0;

    bs_arena_init(&a);
    SIM_OK(&s->w, bs_store_read(nd->t.n->store, &t, &err), &err);
    SIM_OK(&s->w, bs_streams_load(t, &tab), NULL);
    self = bs_streams_get(&tab, m.stream);
    SIM_CHECK(&s->w, self != NULL, "%s: no own stream", nd->t.name);
    SIM_CHECK(&s->w, self->seq - pos0 == st->written + st->deleted,
              "%s: %llu changes written, the stream moved by %llu", nd->t.name,
              (unsigned long long)(st->written + st->deleted),
              (unsigned long long)(self->seq - pos0));
    while (from < self->seq && nv < MAX_OPS) {
        bs_slice set;
        uint64_t last;
        SIM_OK(&s->w, bs_setlog_next(t, m.stream, from, self->seq, &set, &last),
               NULL);
        SIM_OK(&s->w, bs_changeset_decode(set.p, set.n, &v[nv], &err), &err);
        SIM_CHECK(&s->w,
                  memcmp(v[nv]->origin, m.pk, BS_PK_LEN) == 0 &&
                      memcmp(v[nv]->inc, m.inc, BS_INC_LEN) == 0 &&
                      v[nv]->first == from + 1,
                  "%s: the log's set after seq %llu is not its own next one",
                  nd->t.name, (unsigned long long)from);
        for (size_t i = 0; i < v[nv]->count && nch < MAX_OPS; i++)
            SIM_OK(&s->w, bs_changeset_change(v[nv], i, &a, &ch[nch++], &err),
                   &err);
        from = last;
        nv++;
    }
    SIM_CHECK(&s->w, from == self->seq, "%s: the log lacks its last writes",
              nd->t.name);
    /* Match the written ops, in order, to the changes. */
    *nout = 0;
    for (int k = 0; k < b->nw; k++) {
        const wop *o = &ops[b->op[k]];
        mwrite *mw = &out[*nout];
        uint64_t before = seen_hlc(s, &tab, o->coll, o->id);

        if (c >= (int)nch || !change_is_op(&ch[c], o)) {
            SIM_CHECK(&s->w, !o->del, "%s: a delete left no change",
                      nd->t.name);
            trailing_noop = 1;
            continue; /* an upsert that changed nothing */
        }
        trailing_noop = 0;
        /* Earlier writes of this transaction count as held too. */
        for (int j = 0; j < *nout; j++)
            if (out[j].coll == o->coll && out[j].id == o->id &&
                out[j].hlc > before)
                before = out[j].hlc;
        memset(mw, 0, sizeof *mw);
        mw->node = node;
        mw->coll = o->coll;
        mw->id = o->id;
        mw->del = o->del;
        mw->nf = o->nf;
        memcpy(mw->f, o->f, sizeof mw->f);
        memcpy(mw->v, o->v, sizeof mw->v);
        memcpy(mw->key, m.pk, BS_PK_LEN);
        memcpy(mw->key + BS_PK_LEN, m.inc, BS_INC_LEN);
        mw->seq = ch[c].seq;
        mw->hlc = ch[c].hlc;
        seen[*nout] = before;
        c++;
        (*nout)++;
    }
    SIM_CHECK(&s->w,
              c == (int)nch && (uint64_t)(b->nw - *nout) == st->unchanged,
              "%s: %zu changes in the log for %d writes, %llu unchanged",
              nd->t.name, nch, *nout, (unsigned long long)st->unchanged);
    for (int k = 0; k < *nout; k++) {
        const mwrite *mw = &out[k];
        char coll[16], id[16];
        bs_record r;
        bs_err rv;

        coll_name(coll, mw->coll);
        id_name(id, mw->id);
        /* A local write is newer than everything its node holds. */
        SIM_CHECK(&s->w, mw->hlc > seen[k] && mw->hlc > prev,
                  "%s/%s on %s: local write's version is not the newest "
                  "(hlc %llu, record had %llu, previous write %llu)",
                  coll, id, nd->t.name, (unsigned long long)mw->hlc,
                  (unsigned long long)seen[k], (unsigned long long)prev);
        prev = mw->hlc;
        /* The record holds the last write of it in this transaction. */
        for (int j = k + 1; j < *nout; j++)
            if (out[j].coll == mw->coll && out[j].id == mw->id)
                goto next;
        bs_arena_reset(&a);
        rv = bs_records_get(t, coll, id, &a, &r, NULL);
        SIM_CHECK(&s->w,
                  mw->del
                      ? rv == BS_ENOTFOUND
                      : rv == BS_OK && r.has_alive &&
                            r.alive.stream == m.stream &&
                            r.alive.seq == mw->seq && r.alive.hlc == mw->hlc,
                  "%s/%s on %s: the record does not hold the write just made "
                  "(%s)",
                  coll, id, nd->t.name, bs_strerror(rv));
next:;
    }
    /* The clock was persisted: it is the version of the last write, or
     * later when an upsert after it changed nothing (its stamp was taken
     * all the same). */
    SIM_CHECK(&s->w,
              *nout == 0 || (trailing_noop ? m.hlc > prev : m.hlc == prev),
              "%s: persisted clock %llu, last write %llu%s", nd->t.name,
              (unsigned long long)m.hlc, (unsigned long long)prev,
              trailing_noop ? " and an upsert that changed nothing" : "");
    for (size_t i = 0; i < nv; i++)
        bs_changeset_free(v[i]);
    bs_streams_fini(&tab);
    bs_txn_abort(t);
    bs_arena_fini(&a);
}

static void
model_add(sim *s, const mwrite *mw)
{
    if (s->nm == s->capm) {
        s->capm = s->capm ? 2 * s->capm : 256;
        s->m = realloc(s->m, s->capm * sizeof *s->m);
        cr_assert_not_null(s->m);
    }
    s->m[s->nm++] = *mw;
}

/* Run ops as one local transaction on node (bs_records_write); they are
 * acknowledged. */
static void
local_write(sim *s, int node, const wop *ops, int n)
{
    sim_node *nd = &s->w.node[node];
    bs_errbuf err = {{0}};
    bs_write_stats st = {0, 0, 0};
    mwrite out[MAX_OPS];
    bs_streamtab tab;
    bs_meta m = sim_meta(&s->w, node);
    uint64_t pos0;
    wbatch *b = calloc(1, sizeof *b);
    int nout = 0;

    cr_assert_not_null(b);
    sim_streams(&s->w, node, &tab);
    pos0 = bs_streams_get(&tab, m.stream) ? bs_streams_get(&tab, m.stream)->seq
                                          : 0;
    bs_streams_fini(&tab);
    batch_of(s, node, ops, n, b);
    if (b->nw > 0) {
        SIM_OK(&s->w,
               bs_records_write(&nd->t.core, b->w, (size_t)b->nw, &st, &err),
               &err);
        read_back(s, node, b, ops, pos0, &st, out, &nout);
    }
    for (int k = 0; k < nout; k++) {
        model_add(s, &out[k]);
        sim_trace(&s->w, 0x3717e, (uint64_t)node, out[k].hlc, out[k].seq);
    }
    s->st.writes += (uint64_t)nout;
    s->st.noops += (uint64_t)(n - nout);
    free(b);
}

static void
random_op(sim *s, wop *o)
{
    uint64_t *r = &s->w.rng;

    memset(o, 0, sizeof *o);
    o->coll = (int)sim_below(r, (uint64_t)s->p.ncoll);
    o->id = (int)sim_below(r, NIDS);
    if (sim_chance(r, 180)) {
        o->del = 1;
        return;
    }
    /* 1-4 distinct fields, ascending. */
    o->nf = 1 + (int)sim_below(r, MAX_FIELDS);
    {
        int pick[NFIELDS] = {0}, have = 0;
        while (have < o->nf) {
            int f = (int)sim_below(r, NFIELDS);
            if (!pick[f]) {
                pick[f] = 1;
                have++;
            }
        }
        have = 0;
        for (int f = 0; f < NFIELDS; f++)
            if (pick[f]) {
                o->f[have] = (uint8_t)f;
                gen_value(s, &o->v[have++]);
            }
    }
}

/* ---- exchanges ---- */

static int
joined(sim *s, int i)
{
    return sim_meta(&s->w, i).joined;
}

/* 1 when some set's origin is not (yet) a member at node `to`. */
static int
unknown_origin(sim *s, int to, uint8_t *const *set, const size_t *len, size_t n)
{
    bs_errbuf err = {{0}};
    bs_meta m = sim_meta(&s->w, to);
    int unknown = 0;
    bs_txn *t;

    if (!m.joined)
        return 1; /* before joining, only the exchange's hub sets count */
    SIM_OK(&s->w, bs_store_read(s->w.node[to].t.n->store, &t, &err), &err);
    for (size_t i = 0; i < n && !unknown; i++) {
        bs_csview *v;
        bs_member mem;
        SIM_OK(&s->w, bs_changeset_decode(set[i], len[i], &v, &err), &err);
        unknown = bs_members_get(t, &m, v->origin, &mem) != BS_OK;
        bs_changeset_free(v);
    }
    bs_txn_abort(t);
    return unknown;
}

/*
 * Judge the outcome of delivering sets to `to`.  `old`: a replay of an
 * exchange that the receiver did not take before, which may also be refused
 * for going back on its acknowledgement or (after a restore) its infobase.
 */
static void
judge(sim *s, int from, int to, uint8_t *const *set, const size_t *len,
      size_t n, const sim_outcome *o, int old)
{
    sim_world *w = &s->w;

    if (o->verify == BS_EGAP) {
        s->st.refused_gap++;
    } else if (o->verify == BS_EFORGED) {
        /* Legitimate only while the hub's introduction has not arrived. */
        SIM_CHECK(w, unknown_origin(s, to, set, len, n),
                  "exchange %s -> %s refused as forged although every origin "
                  "is a member there: %s",
                  w->node[from].t.name, w->node[to].t.name, o->msg);
        s->st.refused_member++;
    } else if (old && (o->verify == BS_EINVAL || o->verify == BS_EINFOBASE)) {
        ;
    } else {
        SIM_CHECK(w, o->verify == BS_OK, "exchange %s -> %s refused: %s (%s)",
                  w->node[from].t.name, w->node[to].t.name,
                  bs_strerror(o->verify), o->msg);
    }
    /* Pass 1 admits the sets by the rules pass 2 applies (admit.h): an
     * exchange it accepts never fails in pass 2 (P29). */
    SIM_CHECK(w, o->apply == BS_OK,
              "applying exchange %s -> %s failed after pass 1 accepted it: "
              "%s (%s)",
              w->node[from].t.name, w->node[to].t.name, bs_strerror(o->apply),
              o->msg);
    /* A new exchange (the sender's next message number) is never a replay,
     * whatever incarnation the sender is in. */
    SIM_CHECK(w, old || !o->st.replay,
              "new exchange %s -> %s taken for a replay (\"nothing new\"): "
              "its changes and acknowledgement are dropped",
              w->node[from].t.name, w->node[to].t.name);
    s->st.sets_applied += o->st.sets;
    s->st.held += o->st.held;
}

/* A delivery list: pointers into messages (not owned). */
typedef struct dlist {
    uint8_t *set[512];
    size_t len[512];
    size_t n;
} dlist;

static void
dl_add(dlist *d, uint8_t *p, size_t n)
{
    if (d->n < sizeof d->set / sizeof d->set[0]) {
        d->set[d->n] = p;
        d->len[d->n++] = n;
    }
}

/* Some set of some older exchange (NULL if none kept). */
static const sim_xmsg *
old_msg(sim *s)
{
    uint64_t *r = &s->w.rng;

    for (int tries = 0; tries < 8; tries++) {
        int a = (int)sim_below(r, SIM_NODES), b = (int)sim_below(r, SIM_NODES);
        unsigned n = s->w.nhist[a][b];
        if (n == 0)
            continue;
        return &s->w.hist[a][b][sim_below(r, n < SIM_HIST ? n : SIM_HIST)];
    }
    return NULL;
}

/*
 * One exchange from -> to.  With faults the message may be lost in
 * transit, and its sets dropped, duplicated, reordered or mixed with sets
 * of older exchanges.  Returns the sets applied (-1 if refused or not
 * sent).
 */
static long
exchange(sim *s, int from, int to, int faults)
{
    uint64_t *r = &s->w.rng;
    sim_xmsg m;
    sim_outcome o;
    dlist *d;
    long moved;

    snprintf(s->last, sizeof s->last, "%s -> %s: sender has not joined",
             s->w.node[from].t.name, s->w.node[to].t.name);
    if (!sim_send(&s->w, from, to, &m))
        return -1;
    sim_trace(&s->w, 0xe8, (uint64_t)from << 8 | (uint64_t)to, m.nsets,
              m.message_no);
    SIM_SAY("  exchange #%llu %s -> %s: %zu sets%s\n",
            (unsigned long long)m.message_no, s->w.node[from].t.name,
            s->w.node[to].t.name, m.nsets, faults ? " (faults)" : "");
    s->st.exchanges++;
    sim_keep(&s->w, &m);
    if (faults && sim_chance(r, s->p.p_lose)) {
        SIM_SAY("    lost in transit\n");
        s->st.lost_msgs++;
        sim_xmsg_free(&m);
        return -1;
    }
    d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    for (size_t i = 0; i < m.nsets; i++) {
        if (faults && sim_chance(r, s->p.p_drop))
            continue;
        dl_add(d, m.set[i], m.len[i]);
        if (faults && sim_chance(r, s->p.p_dup))
            dl_add(d, m.set[i], m.len[i]);
    }
    if (faults && sim_chance(r, s->p.p_inject)) {
        const sim_xmsg *h = old_msg(s);
        if (h != NULL && h->nsets > 0) {
            size_t k = sim_below(r, h->nsets);
            dl_add(d, h->set[k], h->len[k]);
        }
    }
    if (faults && d->n > 1 && sim_chance(r, s->p.p_swap)) {
        size_t a = sim_below(r, d->n), b = sim_below(r, d->n);
        uint8_t *p = d->set[a];
        size_t l = d->len[a];
        d->set[a] = d->set[b];
        d->len[a] = d->len[b];
        d->set[b] = p;
        d->len[b] = l;
    }
    sim_deliver(&s->w, to, m.env, m.nenv, d->set, d->len, d->n, &o);
    judge(s, from, to, d->set, d->len, d->n, &o, 0);
    moved = o.verify == BS_OK && o.apply == BS_OK
                ? (long)(o.st.sets + (uint64_t)o.st.joined)
                : -1;
    snprintf(s->last, sizeof s->last, "%s -> %s: %s%.200s (%ld sets applied)",
             s->w.node[from].t.name, s->w.node[to].t.name,
             moved < 0 ? "refused: " : "", moved < 0 ? o.msg : "", moved);
    free(d);
    sim_xmsg_free(&m);
    return moved;
}

/* Everything a replay must leave as it was: the named parts, for the
 * message, and the fingerprint of the whole store. */
typedef struct snap {
    uint8_t digest[BS_HASH_LEN];
    uint64_t nrec, log, records, held, conflicts, nstreams;
    uint8_t streams[BS_HASH_LEN];
    uint8_t all[BS_HASH_LEN];
} snap;

static void
take_snap(sim *s, int i, snap *sn)
{
    bs_streamtab tab;
    bs_hash_state h;
    bst_counts c = sim_counts(&s->w, i);

    memset(sn, 0, sizeof *sn);
    sim_digest(&s->w, i, sn->digest, &sn->nrec);
    sn->log = c.sets;
    sn->records = c.records;
    sn->held = c.held;
    sn->conflicts = c.conflicts;
    bst_fingerprint(&s->w.node[i].t, sn->all);
    sim_streams(&s->w, i, &tab);
    bs_hash_init(&h);
    for (size_t k = 0; k < tab.n; k++) {
        bs_hash_update(&h, tab.v[k].key, SIM_KEYLEN);
        bs_hash_update(&h, &tab.v[k].seq, sizeof tab.v[k].seq);
        bs_hash_update(&h, &tab.v[k].flags, sizeof tab.v[k].flags);
        bs_hash_update(&h, tab.v[k].last_hash, BS_HASH_LEN);
    }
    bs_hash_final(&h, sn->streams);
    sn->nstreams = tab.n;
    bs_streams_fini(&tab);
}

/* Deliver a whole old exchange again, as it was sent. */
static void
replay_old(sim *s)
{
    const sim_xmsg *h = old_msg(s);
    sim_outcome o;
    bs_peer p;
    snap a, b;
    int expect;

    if (h == NULL)
        return;
    sim_peer(&s->w, h->to, h->from, &p);
    /* Already taken from this incarnation of the sender: a replay. */
    expect = h->message_no <= p.recv_no &&
             (!p.has_inc || memcmp(p.peer_inc, h->sender_inc, BS_INC_LEN) == 0);
    bs_peer_fini(&p);
    take_snap(s, h->to, &a);
    SIM_SAY("  replay of #%llu %s -> %s (%s)\n",
            (unsigned long long)h->message_no, s->w.node[h->from].t.name,
            s->w.node[h->to].t.name, expect ? "taken before" : "not taken");
    sim_deliver(&s->w, h->to, h->env, h->nenv, h->set, h->len, h->nsets, &o);
    if (!expect) {
        s->st.replays_new++;
        judge(s, h->from, h->to, h->set, h->len, h->nsets, &o, 1);
        return;
    }
    s->st.replays++;
    take_snap(s, h->to, &b);
    SIM_CHECK(&s->w, o.verify == BS_OK && o.apply == BS_OK && o.st.replay,
              "replay of exchange #%llu %s -> %s not recognised: verify %s, "
              "apply %s, replay %d (%s)",
              (unsigned long long)h->message_no, s->w.node[h->from].t.name,
              s->w.node[h->to].t.name, bs_strerror(o.verify),
              bs_strerror(o.apply), o.st.replay, o.msg);
    SIM_CHECK(&s->w, memcmp(&a, &b, sizeof a) == 0,
              "replay of exchange #%llu %s -> %s changed the receiver "
              "(records %llu->%llu, log %llu->%llu, held %llu->%llu)",
              (unsigned long long)h->message_no, s->w.node[h->from].t.name,
              s->w.node[h->to].t.name, (unsigned long long)a.nrec,
              (unsigned long long)b.nrec, (unsigned long long)a.log,
              (unsigned long long)b.log, (unsigned long long)a.held,
              (unsigned long long)b.held);
}

/* A joined branch sends to a paired branch that has not joined yet: the
 * first exchange must come from the hub. */
static void
probe_unjoined(sim *s, int from, int to)
{
    sim_xmsg m;
    sim_outcome o;
    snap a, b;

    take_snap(s, to, &a);
    if (!sim_send(&s->w, from, to, &m))
        return;
    sim_deliver(&s->w, to, m.env, m.nenv, m.set, m.len, m.nsets, &o);
    take_snap(s, to, &b);
    SIM_CHECK(&s->w, o.verify == BS_EINFOBASE,
              "unjoined %s took its first exchange from %s: %s",
              s->w.node[to].t.name, s->w.node[from].t.name,
              bs_strerror(o.verify));
    SIM_CHECK(&s->w, memcmp(&a, &b, sizeof a) == 0,
              "refused exchange changed %s", s->w.node[to].t.name);
    s->st.probes++;
    sim_xmsg_free(&m);
}

/* ---- backup and restore ---- */

/* Does node i hold change (key, seq): in its streams or held back
 * (waiting in the held table, setlog.h)? */
static int
holds(sim *s, int i, bs_streamtab *tab, const mwrite *mw)
{
    bs_errbuf err = {{0}};
    bs_held h;
    bs_txn *t;
    bs_err rv;
    int found = 0;

    if (sim_tab_seq(tab, mw->key) >= mw->seq)
        return 1;
    SIM_OK(&s->w, bs_store_read(s->w.node[i].t.n->store, &t, &err), &err);
    for (rv = bs_held_next(t, BS_HELD_WAITING, 0, 0, 0, &h);
         rv == BS_OK && !found;
         rv = bs_held_next(t, BS_HELD_WAITING, h.stream, h.first, 0, &h)) {
        bs_csview *cv;
        if (bs_changeset_decode(h.set.p, h.set.n, &cv, NULL) != BS_OK)
            continue;
        found = memcmp(cv->origin, mw->key, BS_PK_LEN) == 0 &&
                memcmp(cv->inc, mw->key + BS_PK_LEN, BS_INC_LEN) == 0 &&
                cv->first <= mw->seq && mw->seq <= cv->last;
        bs_changeset_free(cv);
    }
    SIM_CHECK(&s->w, rv == BS_OK || rv == BS_ENOTFOUND, "held sets: %s",
              bs_strerror(rv));
    bs_txn_abort(t);
    return found;
}

static void
backup(sim *s, int i)
{
    sim_node *nd = &s->w.node[i];
    bs_errbuf err = {{0}};
    uint64_t bytes;
    char path[sizeof nd->backup];

    snprintf(path, sizeof path, "%s/%s.backup", s->w.dir, nd->t.name);
    memcpy(nd->backup, path, sizeof path);
    SIM_OK(&s->w, bs_node_backup(nd->t.n, nd->backup, &bytes, &err), &err);
    nd->has_backup = 1;
    s->st.backups++;
    SIM_SAY("  backup of %s\n", nd->t.name);
    sim_trace(&s->w, 0xbac, (uint64_t)i, 0, 0);
}

/* Restore node i from its backup; writes whose every copy is now gone
 * may legitimately be lost. */
static void
restore(sim *s, int i)
{
    sim_node *nd = &s->w.node[i];
    bs_errbuf err = {{0}};
    bs_streamtab tab[SIM_NODES];

    sim_node_close(&s->w, i);
    SIM_OK(&s->w, bs_node_restore(nd->t.dir, nd->backup, &err), &err);
    sim_node_open(&s->w, i);
    s->st.restores++;
    SIM_SAY("  restore of %s\n", nd->t.name);
    sim_trace(&s->w, 0x4e5, (uint64_t)i, 0, 0);
    for (int k = 0; k < SIM_NODES; k++)
        sim_streams(&s->w, k, &tab[k]);
    for (size_t x = 0; x < s->nm; x++) {
        mwrite *mw = &s->m[x];
        int kept = 0;
        if (mw->lost_ok)
            continue;
        for (int k = 0; k < SIM_NODES && !kept; k++)
            kept = holds(s, k, &tab[k], mw);
        mw->lost_ok = !kept;
    }
    for (int k = 0; k < SIM_NODES; k++)
        bs_streams_fini(&tab[k]);
}

/* ---- scenario pieces ---- */

/* Concurrent edits of one field on 2-3 nodes, no exchange in between. */
static void
concurrent_edits(sim *s)
{
    uint64_t *r = &s->w.rng;
    wop o;
    int used[SIM_NODES] = {0}, n = 2 + (int)sim_below(r, 2);

    memset(&o, 0, sizeof o);
    o.coll = (int)sim_below(r, (uint64_t)s->p.ncoll);
    o.id = (int)sim_below(r, NIDS);
    o.nf = 1;
    o.f[0] = (uint8_t)sim_below(r, NFIELDS);
    for (int k = 0; k < n; k++) {
        int node = (int)sim_below(r, SIM_NODES);
        if (used[node])
            continue;
        used[node] = 1;
        o.v[0].type = BS_VTEXT;
        snprintf(o.v[0].s, sizeof o.v[0].s, "conc%llu-%d",
                 (unsigned long long)++s->vcount, node);
        local_write(s, node, &o, 1);
    }
}

/*
 * A conflict forced through the hub: two joined branches write the same
 * field of a fresh record, then both send to the hub (no faults).  The
 * hub must record it if both writes survive to the end.
 */
static void
forced_conflict(sim *s)
{
    uint64_t *r = &s->w.rng;
    int a = 1 + (int)sim_below(r, SIM_NODES - 1), b;
    wop o;

    do
        b = 1 + (int)sim_below(r, SIM_NODES - 1);
    while (b == a);
    if (!joined(s, a))
        exchange(s, 0, a, 0);
    if (!joined(s, b))
        exchange(s, 0, b, 0);
    memset(&o, 0, sizeof o);
    o.coll = 0;
    o.id = ID_FORCED + s->nforced++;
    o.nf = 1;
    o.f[0] = 0;
    o.v[0].type = BS_VTEXT;
    snprintf(o.v[0].s, sizeof o.v[0].s, "forced-%.32s", s->w.node[a].t.name);
    local_write(s, a, &o, 1);
    s->forced_w[0] = (long)s->nm - 1;
    snprintf(o.v[0].s, sizeof o.v[0].s, "forced-%.32s", s->w.node[b].t.name);
    local_write(s, b, &o, 1);
    s->forced_w[1] = (long)s->nm - 1;
    exchange(s, a, 0, 0);
    exchange(s, b, 0, 0);
}

/* A random paired link, in a random direction. */
static void
random_link(sim *s, int *from, int *to)
{
    uint64_t *r = &s->w.rng;

    do {
        *from = (int)sim_below(r, SIM_NODES);
        *to = (int)sim_below(r, SIM_NODES);
    } while (*from == *to || !s->w.paired[*from][*to]);
}

static int avoid_multiwrite, avoid_prejoin;
static void digest_fidelity(sim *s);

static void
step(sim *s)
{
    uint64_t *r = &s->w.rng;
    unsigned k = (unsigned)sim_below(r, 1000);
    int from, to, i = (int)sim_below(r, SIM_NODES);

    sim_advance(&s->w, sim_below(r, 40));
    sim_trace(&s->w, 0x57e9, k, (uint64_t)i, s->w.now);
    SIM_SAY("step kind %u node %d t=%llu\n", k, i,
            (unsigned long long)(s->w.now - SIM_EPOCH_MS));
    if (k < 330) { /* local writes, one transaction */
        wop ops[MAX_OPS];
        int n = 1 + (int)sim_below(r, 3);
        for (int x = 0; x < n; x++)
            random_op(s, &ops[x]);
        /* BS_SIM_AVOID=multiwrite: one write per transaction (so one
         * change per set), which steers clear of the record corruption
         * pinned by tests two_records_one_txn_*, to look past it. */
        local_write(s, i, ops, avoid_multiwrite ? 1 : n);
    } else if (k < 700) { /* an exchange with faults */
        random_link(s, &from, &to);
        if (to != 0 && from != 0 && !joined(s, to))
            return; /* only the hub may send a branch its first exchange */
        exchange(s, from, to, 1);
    } else if (k < 740) { /* a clean exchange both ways, hub and a branch */
        int b = 1 + (int)sim_below(r, SIM_NODES - 1);
        exchange(s, 0, b, 0);
        exchange(s, b, 0, 0);
    } else if (k < 770) {
        concurrent_edits(s);
    } else if (k < 820) {
        replay_old(s);
    } else if (k < 940) {
        sim_advance(&s->w, 1 + sim_below(r, 2000));
    } else if (k < 955) {
        sim_advance(&s->w, 5000 + sim_below(r, 85000));
    } else if (k < 970) {
        /* BS_SIM_AVOID=prejoin: no backups of branches that have not
         * joined (see tests restore_before_join_*). */
        if (!s->w.node[i].has_backup && (!avoid_prejoin || joined(s, i)))
            backup(s, i);
    } else if (k < 985) {
        if (s->w.node[i].has_backup) {
            restore(s, i);
            /* Sometimes restore the same backup again later. */
            s->w.node[i].has_backup = sim_chance(r, 300);
        }
    } else if (k < 990) {
        random_link(s, &from, &to);
        if (from != 0 && to != 0 && joined(s, from) && !joined(s, to))
            probe_unjoined(s, from, to);
    } else if (k < 1000) {
        digest_fidelity(s);
    }
}

/* ---- the run ---- */

static void
choose(uint64_t seed, params *p, int64_t skew[SIM_NODES])
{
    uint64_t r = seed ^ 0x9a7a3e7e5ull;
    static const unsigned drop[] = {0, 50, 150, 300};

    p->steps = 200 + (int)sim_below(&r, 200);
    p->ncoll = 2 + (int)sim_below(&r, 2);
    p->mesh = (int)(seed & 1);
    p->p_lose = (unsigned)sim_below(&r, 100);
    p->p_drop = drop[sim_below(&r, 4)];
    p->p_dup = (unsigned)sim_below(&r, 100);
    p->p_swap = (unsigned)sim_below(&r, 150);
    p->p_inject = (unsigned)sim_below(&r, 150);
    p->forced_at = seed % 3 != 0 ? (int)sim_below(&r, (uint64_t)p->steps) : -1;
    /* Distinct skews within +-29 s, so the 60 s hold is rarely hit ... */
    for (int i = 0; i < SIM_NODES; i++)
        skew[i] = (int64_t)sim_below(&r, 58000) - 29000;
    /* ... and in some seeds one node runs 5 minutes ahead. */
    p->ahead = seed % 4 == 0 ? (int)sim_below(&r, SIM_NODES) : -1;
    if (p->ahead >= 0)
        skew[p->ahead] += HOLD_AHEAD_MS;
}

/* Branch pairs linked directly in mesh seeds (both must have joined through
 * the hub before they take anything from each other). */
static void
mesh(sim *s)
{
    static const int pairs[][2] = {{1, 2}, {2, 3}, {3, 4}, {1, 4}, {1, 3}};
    uint64_t *r = &s->w.rng;

    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int a = pairs[k][0], b = pairs[k][1];
        if (k >= 3 && sim_chance(r, 500))
            continue;
        sim_pair(&s->w, a, &b, 1);
        sim_pair(&s->w, b, &a, 1);
    }
    /* branch1 joins; branch2 must refuse it as its first exchange. */
    exchange(s, 0, 1, 0);
    probe_unjoined(s, 1, 2);
}

/* Faults heal: full rounds hub <-> every branch until nothing moves. */
static void
final_rounds(sim *s)
{
    char why[2400];
    int round;

    /* Past every hold: the node 5 minutes ahead is caught up with. */
    sim_advance(&s->w, HOLD_AHEAD_MS + 2 * SIM_SKEW_MS);
    for (round = 1; round <= FINAL_ROUNDS; round++) {
        int busy = 0;
        SIM_SAY("final round %d\n", round);
        why[0] = '\0';
        for (int k = 0; k < 2 * (SIM_NODES - 1); k++) {
            int b = 1 + k % (SIM_NODES - 1), up = k < SIM_NODES - 1;
            if (exchange(s, up ? b : 0, up ? 0 : b, 0) != 0) {
                size_t n = strlen(why);
                busy = 1;
                snprintf(why + n, sizeof why - n, "\n      %s", s->last);
            }
        }
        sim_advance(&s->w, 1000);
        if (!busy)
            break;
    }
    s->st.final_rounds = (uint64_t)round;
    SIM_CHECK(&s->w, round <= FINAL_ROUNDS,
              "still exchanging changes (or refusing) after %d clean rounds; "
              "in the last one:%s",
              FINAL_ROUNDS, why);
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expected live records: field-LWW over the surviving writes. */
/* One expected live record: its key and its visible fields. */
typedef struct mrec {
    char key[40]; /* coll \0 id */
    size_t klen;
    int coll, id, nf;
    uint8_t f[NFIELDS];
    bs_value v[NFIELDS];
} mrec;

static int
mrec_cmp(const void *a, const void *b)
{
    const mrec *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void
h_u32(crypto_generichash_state *h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};

    crypto_generichash_update(h, b, 4);
}

static void
h_u64(crypto_generichash_state *h, uint64_t v)
{
    h_u32(h, (uint32_t)(v >> 32));
    h_u32(h, (uint32_t)v);
}

static void
h_str(crypto_generichash_state *h, const void *p, size_t n)
{
    h_u32(h, (uint32_t)n);
    crypto_generichash_update(h, p, n);
}

/*
 * Expected live records: field-LWW over the surviving writes, as text
 * lines in out (sorted), and their digest computed from docs/protocol.md
 * section 10 (independently of digest.c).
 */
static size_t
expected_state(sim *s, bs_streamtab *final, char **out,
               uint8_t digest[BS_HASH_LEN])
{
    /* Per record: the greatest delete, the greatest upsert and, per field,
     * the greatest upsert that wrote it (and where in it). */
    const mwrite *del[NCOLL_MAX][ID_MAX] = {{0}},
                 *alive[NCOLL_MAX][ID_MAX] = {{0}},
                 *field[NCOLL_MAX][ID_MAX][NFIELDS] = {{{0}}};
    int fidx[NCOLL_MAX][ID_MAX][NFIELDS];
    mrec *rec = calloc(NCOLL_MAX * ID_MAX, sizeof *rec);
    crypto_generichash_state h;
    size_t n = 0;

    cr_assert_not_null(rec);
    for (size_t x = 0; x < s->nm; x++) {
        const mwrite *mw = &s->m[x];
        const mwrite **d = &del[mw->coll][mw->id];
        const mwrite **a = &alive[mw->coll][mw->id];

        if (sim_tab_seq(final, mw->key) < mw->seq)
            continue; /* did not survive (checked separately) */
        if (mw->del) {
            if (*d == NULL || ver_cmp(mw, *d) > 0)
                *d = mw;
            continue;
        }
        if (*a == NULL || ver_cmp(mw, *a) > 0)
            *a = mw;
        for (int k = 0; k < mw->nf; k++) {
            const mwrite **f = &field[mw->coll][mw->id][mw->f[k]];
            if (*f == NULL || ver_cmp(mw, *f) > 0) {
                *f = mw;
                fidx[mw->coll][mw->id][mw->f[k]] = k;
            }
        }
    }
    /* Live when the last upsert is newer than the last delete; a field is
     * visible when its write is newer than the last delete (record.h). */
    for (int c = 0; c < NCOLL_MAX; c++)
        for (int id = 0; id < ID_MAX; id++) {
            const mwrite *a = alive[c][id], *d = del[c][id];
            mrec *r = &rec[n];
            char cn[16], in[16];

            if (a == NULL || (d != NULL && ver_cmp(a, d) <= 0))
                continue;
            coll_name(cn, c);
            id_name(in, id);
            r->klen =
                (size_t)snprintf(r->key, sizeof r->key, "%s%c%s", cn, '\0', in);
            r->coll = c;
            r->id = id;
            for (int f = 0; f < NFIELDS; f++) {
                const mwrite *fw = field[c][id][f];
                if (fw == NULL || (d != NULL && ver_cmp(fw, d) <= 0))
                    continue;
                r->f[r->nf] = (uint8_t)f;
                r->v[r->nf++] = mval_value(&fw->v[fidx[c][id][f]]);
            }
            n++;
        }
    qsort(rec, n, sizeof *rec, mrec_cmp);
    crypto_generichash_init(&h, NULL, 0, BS_HASH_LEN);
    crypto_generichash_update(&h, (const uint8_t *)"branchsync/digest/v1", 20);
    for (size_t k = 0; k < n; k++) {
        const mrec *r = &rec[k];
        size_t cl = strlen(r->key);
        char buf[1024];
        size_t len;

        h_str(&h, r->key, cl);
        h_str(&h, r->key + cl + 1, r->klen - cl - 1);
        h_u32(&h, (uint32_t)r->nf);
        len = (size_t)snprintf(buf, sizeof buf, "%s/%s:", r->key,
                               r->key + cl + 1);
        for (int f = 0; f < r->nf; f++) {
            const bs_value *v = &r->v[f];
            uint8_t type = v->type;
            uint64_t bits;

            h_str(&h, field_name[r->f[f]], strlen(field_name[r->f[f]]));
            crypto_generichash_update(&h, &type, 1);
            if (type == BS_VINT) {
                h_u64(&h, (uint64_t)v->i);
            } else if (type == BS_VREAL) {
                memcpy(&bits, &v->d, 8);
                h_u64(&h, bits);
            } else if (type == BS_VTEXT) {
                h_str(&h, v->s, v->len);
            }
            if (len < sizeof buf)
                len += (size_t)snprintf(buf + len, sizeof buf - len,
                                        " %s=", field_name[r->f[f]]);
            if (len < sizeof buf)
                len += value_str(buf + len, sizeof buf - len, v);
        }
        out[k] = strdup(buf);
    }
    crypto_generichash_final(&h, digest, BS_HASH_LEN);
    free(rec);
    qsort(out, n, sizeof *out, str_cmp);
    return n;
}

/* One live record in the form of expected_state. */
static char *
record_line(const char *coll, const char *id, size_t idlen, const bs_record *r)
{
    char buf[1024];
    size_t len =
        (size_t)snprintf(buf, sizeof buf, "%s/%.*s:", coll, (int)idlen, id);

    for (size_t f = 0; f < r->nfields && len < sizeof buf; f++) {
        bs_value name = {BS_VTEXT, 0, 0, r->fields[f].name,
                         r->fields[f].namelen};
        char nb[300];
        value_str(nb, sizeof nb, &name); /* "s<len>:<escaped>" */
        len += (size_t)snprintf(buf + len, sizeof buf - len,
                                " %s=", strchr(nb, ':') + 1);
        if (len < sizeof buf)
            len += value_str(buf + len, sizeof buf - len, &r->fields[f].val);
    }
    return strdup(buf);
}

/* Node i's live user records in the same form: every user collection the
 * store holds records of (bs_status_read), walked with records.h. */
static size_t
actual_state(sim *s, int i, char **out, size_t max)
{
    bs_errbuf err = {{0}};
    bs_status_opts so = {0, 0, 1};
    bs_status st;
    bs_meta m = sim_meta(&s->w, i);
    bs_txn *t;
    size_t n = 0;

    SIM_OK(&s->w, bs_store_read(s->w.node[i].t.n->store, &t, &err), &err);
    SIM_OK(&s->w, bs_status_read(t, &m, &so, &st, &err), &err);
    for (size_t c = 0; c < st.ncolls; c++) {
        bs_records_iter *it;
        const bs_record *r;
        const char *id;
        size_t idlen;
        bs_err rv;

        SIM_OK(&s->w,
               bs_records_iter_open(t, st.colls[c].name, NULL, NULL, &it),
               NULL);
        while ((rv = bs_records_iter_next(it, &id, &idlen, &r, &err)) ==
               BS_OK) {
            SIM_CHECK(&s->w, n < max, "%s holds more records than ever written",
                      s->w.node[i].t.name);
            out[n++] = record_line(st.colls[c].name, id, idlen, r);
        }
        SIM_CHECK(&s->w, rv == BS_ENOTFOUND, "record scan: %s",
                  bs_errmsg(&err, rv));
        bs_records_iter_close(it);
    }
    bs_status_fini(&st);
    bs_txn_abort(t);
    qsort(out, n, sizeof *out, str_cmp);
    return n;
}

static void
free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

/*
 * The digest is a faithful fingerprint: mid-run, when nodes hold different
 * data, two nodes have equal digests exactly when their live records are
 * equal (compared field by field, outside the digest code).
 */
static void
digest_fidelity(sim *s)
{
    enum { CAP = NCOLL_MAX * ID_MAX + 1 };
    char **st[SIM_NODES];
    size_t n[SIM_NODES];
    uint8_t d[SIM_NODES][BS_HASH_LEN];
    uint64_t nrec;

    for (int i = 0; i < SIM_NODES; i++) {
        st[i] = calloc(CAP, sizeof *st[i]);
        cr_assert_not_null(st[i]);
        n[i] = actual_state(s, i, st[i], CAP);
        sim_digest(&s->w, i, d[i], &nrec);
        SIM_CHECK(&s->w, nrec == n[i],
                  "%s: digest counts %llu records, %zu live",
                  s->w.node[i].t.name, (unsigned long long)nrec, n[i]);
    }
    for (int i = 0; i < SIM_NODES; i++)
        for (int j = i + 1; j < SIM_NODES; j++) {
            int same = n[i] == n[j];
            for (size_t k = 0; same && k < n[i]; k++)
                same = strcmp(st[i][k], st[j][k]) == 0;
            SIM_CHECK(&s->w, same == (memcmp(d[i], d[j], BS_HASH_LEN) == 0),
                      "digests of %s and %s are %s but their records are %s",
                      s->w.node[i].t.name, s->w.node[j].t.name,
                      same ? "different" : "equal",
                      same ? "equal" : "different");
        }
    for (int i = 0; i < SIM_NODES; i++) {
        free_strs(st[i], n[i]);
        free(st[i]);
    }
}

static void
describe(const mwrite *mw, const sim *s, char *buf, size_t n)
{
    char cn[16], in[16];
    size_t len;

    coll_name(cn, mw->coll);
    id_name(in, mw->id);
    len = (size_t)snprintf(
        buf, n, "%s seq %llu hlc %llu: %s %s/%s", s->w.node[mw->node].t.name,
        (unsigned long long)mw->seq, (unsigned long long)mw->hlc,
        mw->del ? "del" : "put", cn, in);
    for (int k = 0; k < mw->nf && len < n; k++) {
        bs_value v = mval_value(&mw->v[k]);
        len +=
            (size_t)snprintf(buf + len, n - len, " %s=", field_name[mw->f[k]]);
        if (len < n)
            len += value_str(buf + len, n - len, &v);
    }
}

/* The checker. */
static void
check(sim *s, uint8_t digest_out[BS_HASH_LEN])
{
    sim_world *w = &s->w;
    uint8_t d0[BS_HASH_LEN], d[BS_HASH_LEN], dwant[BS_HASH_LEN];
    uint64_t n0, n;
    bs_streamtab tab[SIM_NODES];
    char **want, **got;
    size_t nwant, ngot, cap = NCOLL_MAX * ID_MAX + 1;

    /* No gap: the same position in every stream everywhere, nothing held
     * back or quarantined, everyone joined. */
    for (int i = 0; i < SIM_NODES; i++) {
        sim_streams(w, i, &tab[i]);
        SIM_CHECK(w, joined(s, i), "%s never joined", w->node[i].t.name);
        SIM_CHECK(w, sim_counts(w, i).held == 0,
                  "%s still holds back %llu sets", w->node[i].t.name,
                  (unsigned long long)sim_counts(w, i).held);
    }
    for (int i = 0; i < SIM_NODES; i++)
        for (size_t k = 0; k < tab[i].n; k++) {
            const bs_stream *st = &tab[i].v[k];
            SIM_CHECK(w, !(st->flags & BS_STREAM_QUARANTINED),
                      "%s quarantined a stream: %s", w->node[i].t.name,
                      st->note);
            for (int j = 0; j < SIM_NODES; j++) {
                uint64_t other = sim_tab_seq(&tab[j], st->key);
                char id[BS_NODE_ID_LEN + 1];
                bs_node_id_format(st->key, id);
                SIM_CHECK(w, other == st->seq,
                          "stream %.17s... (inc %02x%02x..) at seq %llu on %s "
                          "but %llu on %s",
                          id, st->key[BS_PK_LEN], st->key[BS_PK_LEN + 1],
                          (unsigned long long)st->seq, w->node[i].t.name,
                          (unsigned long long)other, w->node[j].t.name);
            }
        }
    /* Every acknowledged write whose copies were not all rolled back
     * survives (is held in its stream everywhere). */
    for (size_t x = 0; x < s->nm; x++) {
        const mwrite *mw = &s->m[x];
        char desc[512];
        if (sim_tab_seq(&tab[0], mw->key) >= mw->seq)
            continue;
        s->st.lost_writes++;
        describe(mw, s, desc, sizeof desc);
        SIM_CHECK(w, mw->lost_ok, "acknowledged write lost: %s", desc);
    }
    /* The exact state: field-LWW over the surviving writes. */
    want = calloc(cap, sizeof *want);
    got = calloc(cap, sizeof *got);
    cr_assert(want && got);
    nwant = expected_state(s, &tab[0], want, dwant);
    for (int i = 0; i < SIM_NODES; i++) {
        ngot = actual_state(s, i, got, cap);
        for (size_t k = 0; k < nwant || k < ngot; k++) {
            const char *e = k < nwant ? want[k] : "(none)";
            const char *g = k < ngot ? got[k] : "(none)";
            SIM_CHECK(w, strcmp(e, g) == 0,
                      "%s: record %zu differs from field-LWW over the "
                      "surviving writes:\n      want %s\n      got  %s",
                      w->node[i].t.name, k, e, g);
        }
        free_strs(got, ngot);
    }
    free_strs(want, nwant);
    free(want);
    free(got);
    /* S7: equal digests. */
    sim_digest(w, 0, d0, &n0);
    for (int i = 1; i < SIM_NODES; i++) {
        sim_digest(w, i, d, &n);
        SIM_CHECK(w, memcmp(d, d0, BS_HASH_LEN) == 0,
                  "digests differ after the final rounds: %s holds %llu live "
                  "records, %s %llu",
                  w->node[0].t.name, (unsigned long long)n0, w->node[i].t.name,
                  (unsigned long long)n);
    }
    /* ... and equal to the digest of the expected records, computed as
     * docs/protocol.md section 10 specifies. */
    SIM_CHECK(w, memcmp(d0, dwant, BS_HASH_LEN) == 0 && n0 == nwant,
              "digest (%llu records) is not the digest of the expected "
              "records (%zu) as docs/protocol.md section 10 specifies",
              (unsigned long long)n0, nwant);
    /* A forced concurrent edit is a conflict the hub records, under that
     * collection, record and field. */
    s->st.conflicts_hub = sim_counts(w, 0).conflicts;
    if (s->forced_w[0] >= 0 &&
        sim_tab_seq(&tab[0], s->m[s->forced_w[0]].key) >=
            s->m[s->forced_w[0]].seq &&
        sim_tab_seq(&tab[0], s->m[s->forced_w[1]].key) >=
            s->m[s->forced_w[1]].seq) {
        char in[16];
        id_name(in, s->m[s->forced_w[0]].id);
        SIM_CHECK(w, sim_conflicts_of(w, 0, "c0", in, field_name[0]) > 0,
                  "concurrent edits of c0/%s field %s by two branches: no "
                  "conflict recorded on the hub (%llu others)",
                  in, field_name[0], (unsigned long long)s->st.conflicts_hub);
    }
    for (int i = 0; i < SIM_NODES; i++)
        bs_streams_fini(&tab[i]);
    memcpy(digest_out, d0, BS_HASH_LEN);
}

static stats total;

/*
 * Run one seed; *trace gets the hash of its event trace and final digest.
 * Returns 0, or 1 with the failure in sim_failmsg.
 */
static int
run_seed(uint64_t seed, uint8_t trace[BS_HASH_LEN])
{
    sim *s = calloc(1, sizeof *s);
    int64_t skew[SIM_NODES];
    uint8_t digest[BS_HASH_LEN];
    jmp_buf jb;

    cr_assert_not_null(s);
    choose(seed, &s->p, skew);
    s->forced_w[0] = s->forced_w[1] = -1;
    s->w.seed = seed;
    if (setjmp(jb) != 0) {
        /* A check failed, perhaps inside a transaction: the stores cannot
         * be closed then.  Leak them and only remove the directory. */
        sim_catch = NULL;
        sim_world_abandon(&s->w);
        free(s->m);
        free(s);
        return 1;
    }
    sim_catch = &jb;
    sim_world_init(&s->w, seed, skew);
    if (s->p.mesh)
        mesh(s);
    for (int k = 0; k < s->p.steps; k++) {
        if (k == s->p.forced_at)
            forced_conflict(s);
        step(s);
    }
    final_rounds(s);
    check(s, digest);
    sim_catch = NULL;
    bs_hash_update(&s->w.trace, digest, BS_HASH_LEN);
    bs_hash_final(&s->w.trace, trace);
#define ADD(f) total.f += s->st.f
    ADD(writes), ADD(noops), ADD(exchanges), ADD(lost_msgs);
    ADD(sets_applied), ADD(refused_gap), ADD(refused_member);
    ADD(replays), ADD(replays_new), ADD(restores);
    ADD(backups), ADD(probes), ADD(held), ADD(conflicts_hub);
    ADD(final_rounds), ADD(lost_writes);
#undef ADD
    sim_world_fini(&s->w);
    free(s->m);
    free(s);
    return 0;
}

static void
print_stats(uint64_t seeds)
{
    if (getenv("BS_SIM_STATS") == NULL)
        return;
    fprintf(
        stderr,
        "converge: %llu seeds: %llu writes (%llu no-ops), %llu "
        "exchanges (%llu lost), %llu sets applied, refused: %llu gap, "
        "%llu member; %llu held; "
        "%llu replays (+%llu old not taken), %llu backups, %llu "
        "restores, %llu writes rolled back for good, %llu probes, "
        "%llu hub conflicts, %llu final rounds\n",
        (unsigned long long)seeds, (unsigned long long)total.writes,
        (unsigned long long)total.noops, (unsigned long long)total.exchanges,
        (unsigned long long)total.lost_msgs,
        (unsigned long long)total.sets_applied,
        (unsigned long long)total.refused_gap,
        (unsigned long long)total.refused_member,
        (unsigned long long)total.held, (unsigned long long)total.replays,
        (unsigned long long)total.replays_new,
        (unsigned long long)total.backups, (unsigned long long)total.restores,
        (unsigned long long)total.lost_writes, (unsigned long long)total.probes,
        (unsigned long long)total.conflicts_hub,
        (unsigned long long)total.final_rounds);
}

/* Seeds to run: BS_SEED=n alone, else 1..BS_SEEDS (default n). */
static void
seed_range(uint64_t n, uint64_t *first, uint64_t *last)
{
    const char *one = getenv("BS_SEED"), *many = getenv("BS_SEEDS");

    *first = 1;
    *last = n;
    if (one != NULL && *one != '\0') {
        *first = *last = strtoull(one, NULL, 10);
    } else if (many != NULL && *many != '\0') {
        *last = strtoull(many, NULL, 10);
    }
}

static sim_world *scripted; /* the world of a regression test */

static void
setup(void)
{
    const char *avoid = getenv("BS_SIM_AVOID");

    avoid_multiwrite = avoid != NULL && strstr(avoid, "multiwrite") != NULL;
    avoid_prejoin = avoid != NULL && strstr(avoid, "prejoin") != NULL;
    sim_verbose = getenv("BS_SIM_VERBOSE") != NULL;
    sim_crypto_init();
}

static void
teardown(void)
{
    if (scripted != NULL) {
        sim_world_fini(scripted);
        free(scripted);
        scripted = NULL;
    }
}

TestSuite(converge, .init = setup, .fini = teardown);

/* Every seed runs; the failing ones are listed at the end, each with its
 * first failure (the first in full). */
Test(converge, seeds, .timeout = 900)
{
    uint64_t first, last, nfail = 0, failed[8];
    uint8_t trace[BS_HASH_LEN];
    char first_msg[sizeof sim_failmsg] = "";

    seed_range(DEFAULT_SEEDS, &first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        if (run_seed(seed, trace) == 0)
            continue;
        if (nfail == 0)
            memcpy(first_msg, sim_failmsg, sizeof first_msg);
        if (nfail < 8)
            failed[nfail] = seed;
        nfail++;
        /* One line per failing seed; the first in full below. */
        fprintf(stderr, "converge: FAILED %.*s\n",
                (int)strcspn(sim_failmsg, "\n"), sim_failmsg);
    }
    print_stats(last - first + 1);
    if (nfail > 0) {
        char list[160] = "";
        size_t n = 0;
        for (uint64_t k = 0; k < nfail && k < 8; k++)
            n += (size_t)snprintf(list + n, sizeof list - n, " %llu",
                                  (unsigned long long)failed[k]);
        cr_assert_fail("%llu of %llu seeds failed (seeds%s%s); first:\n  %s",
                       (unsigned long long)nfail,
                       (unsigned long long)(last - first + 1), list,
                       nfail > 8 ? " ..." : "", first_msg);
    }
}

/* A4: the same seed twice gives the same trace and final digest (keys and
 * incarnations included: sim.h seeds libsodium's random bytes). */
Test(converge, determinism, .timeout = 600)
{
    uint64_t first, last;
    uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN];

    seed_range(DETERMINISM_N, &first, &last);
    if (getenv("BS_SEED") == NULL || *getenv("BS_SEED") == '\0')
        last = first + DETERMINISM_N - 1;
    for (uint64_t seed = first; seed <= last; seed++) {
        int fa = run_seed(seed, a), fb;
        char msg[sizeof sim_failmsg];

        memcpy(msg, sim_failmsg, sizeof msg);
        fb = run_seed(seed, b);
        /* Both runs must fail the same way or both pass identically. */
        cr_assert(fa == fb && (fa || memcmp(a, b, BS_HASH_LEN) == 0) &&
                      (!fa || strcmp(msg, sim_failmsg) == 0),
                  "seed %llu: two runs of the same seed differ (%s)\n    "
                  "rerun: BS_SEED=%llu ./build/tests/test_converge",
                  (unsigned long long)seed,
                  fa != fb ? "one failed" : "trace or final digest",
                  (unsigned long long)seed);
    }
}

/* ---- regression tests: each pins one finding of the simulation ---- */

/* A hub (hub_skew ms ahead) and four branches whose clocks are a few ms
 * apart, nobody joined yet. */
static sim_world *
world_skewed(uint64_t seed, int64_t hub_skew)
{
    int64_t skew[SIM_NODES] = {0, 7, 13, 21, 29};

    skew[0] += hub_skew;
    scripted = calloc(1, sizeof *scripted);
    cr_assert_not_null(scripted);
    sim_world_init(scripted, seed, skew);
    return scripted;
}

static sim_world *
world(uint64_t seed)
{
    return world_skewed(seed, 0);
}

static void
sync_ok(sim_world *w, int from, int to)
{
    sim_outcome o;

    cr_assert(sim_sync(w, from, to, &o), "%s cannot send",
              w->node[from].t.name);
    cr_assert(o.verify == BS_OK && o.apply == BS_OK && !o.st.replay,
              "exchange %s -> %s: %s (%s)%s", w->node[from].t.name,
              w->node[to].t.name,
              bs_strerror(o.verify != BS_OK ? o.verify : o.apply), o.msg,
              o.st.replay ? " taken for a replay" : "");
}

static void
expect_record(sim_world *w, int i, const char *coll, const char *id,
              const char *want, const char *what)
{
    char *json = sim_get(w, i, coll, id), got[512];

    /* Copied so that a failing assertion leaks nothing. */
    snprintf(got, sizeof got, "%s", json ? json : "(absent)");
    free(json);
    cr_assert(strcmp(got, want) == 0,
              "%s: %s/%s on %s\n    want %s\n    got  %s", what, coll, id,
              w->node[i].t.name, want, got);
}

/*
 * Regression (fixed), found by the seeds test (nearly every seed failed on
 * it): a write transaction that wrote record X after another record on the
 * same page stored X with wrong field names and values.  local.c and
 * apply.c decoded the old record from bytes LMDB may move at the next
 * write in the transaction, then encoded the merge after reserving the
 * same key: the merged fields still pointed into the moved bytes.  It was
 * reachable from the CLI too: put r2 {"c":7}, then load {"id":"r1","b":2}
 * {"id":"r2","a":8} gave r2 = {"a":8,"b":7}.
 */
Test(converge, two_records_one_txn_local)
{
    sim_world *w = world(1001);
    const char *a[] = {"c/r2/{\"c\":7}"};
    const char *b[] = {"c/r1/{\"b\":2}", "c/r2/{\"a\":8}"};

    sim_local(w, 0, a, 1);
    sim_local(w, 0, b, 2);
    expect_record(w, 0, "c", "r2", "{\"id\":\"r2\",\"a\":8,\"c\":7}",
                  "second record written in one transaction is corrupt");
}

/* The same through apply: one remote set writes r1, then r2. */
Test(converge, two_records_one_txn_apply)
{
    sim_world *w = world(1002);
    const char *a[] = {"c/r2/{\"c\":\"seven\"}"};
    const char *b[] = {"c/r1/{\"b\":\"two\"}", "c/r2/{\"a\":\"eight\"}"};

    sync_ok(w, 0, 1);
    sim_local(w, 1, a, 1); /* r2 exists on branch1 only */
    sim_local(w, 0, b, 2); /* the hub's set: r1 (new), r2 (new here) */
    expect_record(w, 0, "c", "r2", "{\"id\":\"r2\",\"a\":\"eight\"}",
                  "hub's own write");
    sync_ok(w, 0, 1);
    expect_record(w, 1, "c", "r2",
                  "{\"id\":\"r2\",\"a\":\"eight\",\"c\":\"seven\"}",
                  "a set that writes two records is applied corrupt");
}

/*
 * Regression (fixed), found by the seeds test (seeds with a restore): after
 * a restore the node's message numbers start again from the backup's, in a
 * new incarnation.  The peer took the first such exchange (the incarnation
 * changed) but kept the old, higher recv_no, so every following exchange
 * of the new incarnation up to that number was a "replay": its changes and
 * acknowledgement were silently dropped.  A new incarnation of the sender
 * now restarts the count (exchange.h, bs_xchg_record).
 */
Test(converge, restore_message_numbers)
{
    sim_world *w = world(1003);
    char path[256];
    uint64_t bytes;
    bs_errbuf err = {{0}};
    const char *w1[] = {"c/after1/{\"v\":1}"}, *w2[] = {"c/after2/{\"v\":2}"};
    sim_outcome o;

    sync_ok(w, 0, 1);
    sync_ok(w, 1, 0);
    snprintf(path, sizeof path, "%s/b1.backup", w->dir);
    cr_assert_eq(bs_node_backup(w->node[1].t.n, path, &bytes, &err), BS_OK);
    for (int k = 0; k < 3; k++) /* messages the restore forgets */
        sync_ok(w, 1, 0);
    sim_node_close(w, 1);
    cr_assert_eq(bs_node_restore(w->node[1].t.dir, path, &err), BS_OK, "%s",
                 err.msg);
    sim_node_open(w, 1);
    sim_local(w, 1, w1, 1);
    sync_ok(w, 1, 0); /* new incarnation: taken */
    expect_record(w, 0, "c", "after1", "{\"id\":\"after1\",\"v\":1}",
                  "first write after the restore");
    sim_local(w, 1, w2, 1);
    cr_assert(sim_sync(w, 1, 0, &o));
    cr_assert(!o.st.replay,
              "the restored branch's second exchange was taken for a replay "
              "(\"nothing new\"): expected its change to be applied");
    expect_record(w, 0, "c", "after2", "{\"id\":\"after2\",\"v\":2}",
                  "second write after the restore");
}

/*
 * Regression (fixed), found by the seeds test (e.g. seeds 17, 20): a branch
 * writes before joining (its sets are sealed with the all-zero infobase),
 * is backed up and restored (a new incarnation), then joins.  Joining used
 * to re-seal only the current incarnation's stream, so the sets of the
 * earlier incarnation kept the zero infobase and every exchange that
 * carried them was refused: "change set ... belongs to another infobase".
 */
Test(converge, restore_before_join_reseal)
{
    sim_world *w = world(1004);
    char path[256];
    uint64_t bytes;
    bs_errbuf err = {{0}};
    const char *early[] = {"c/early/{\"v\":1}"};

    sim_local(w, 1, early, 1); /* before joining */
    snprintf(path, sizeof path, "%s/b1.backup", w->dir);
    cr_assert_eq(bs_node_backup(w->node[1].t.n, path, &bytes, &err), BS_OK);
    sim_node_close(w, 1);
    cr_assert_eq(bs_node_restore(w->node[1].t.dir, path, &err), BS_OK, "%s",
                 err.msg);
    sim_node_open(w, 1);
    sync_ok(w, 0, 1); /* joins */
    sync_ok(w, 1, 0);
    expect_record(w, 0, "c", "early", "{\"id\":\"early\",\"v\":1}",
                  "a write made before joining");
}

/*
 * Regression (fixed), found by the seeds test (e.g. seeds 2, 5, 9; 20 of
 * 200 failed on it once the other bugs were fixed): a branch that joined
 * and sent the hub its vector is restored from a backup taken before it
 * joined.  The hub still believed the branch held what it acknowledged, so
 * its exchanges started past what the branch had and were refused as a
 * gap.  Now a branch that has not joined sends its envelope alone, which
 * corrects the hub.
 */
Test(converge, restore_before_join_rejoin)
{
    sim_world *w = world(1005);
    char path[256];
    uint64_t bytes;
    bs_errbuf err = {{0}};
    const char *hubw[] = {"c/x/{\"v\":1}"};
    sim_outcome o;

    snprintf(path, sizeof path, "%s/b1.backup", w->dir);
    cr_assert_eq(bs_node_backup(w->node[1].t.n, path, &bytes, &err), BS_OK);
    sync_ok(w, 0, 1);
    sync_ok(w, 1, 0); /* the hub records branch1's vector */
    sim_node_close(w, 1);
    cr_assert_eq(bs_node_restore(w->node[1].t.dir, path, &err), BS_OK, "%s",
                 err.msg);
    sim_node_open(w, 1);
    sim_local(w, 0, hubw, 1);
    /* The restored branch sends its envelope (no sets before joining):
     * the hub learns where it stands, and sends from there. */
    cr_assert(sim_sync(w, 1, 0, &o));
    cr_assert_eq(o.verify, BS_OK, "%s", o.msg);
    for (int k = 0; k < 3; k++) {
        cr_assert(sim_sync(w, 0, 1, &o));
        if (o.verify == BS_OK && o.apply == BS_OK)
            break;
    }
    cr_assert(o.verify == BS_OK && o.apply == BS_OK && o.st.joined,
              "branch restored to before it joined cannot join again: %s",
              o.msg);
    expect_record(w, 1, "c", "x", "{\"id\":\"x\",\"v\":1}",
                  "the hub's data after rejoining");
}

/*
 * Regression (fixed), found by the seeds test (a node 5 minutes ahead):
 * docs/reliability.md S10 decides that a change more than the skew bound
 * ahead is held and "the origin's later changes wait behind it; other
 * origins flow on".  bs_xchg_apply used to apply the held origin's next
 * set, which failed with BS_EGAP and stopped the whole exchange: the other
 * origins' sets after it were not applied and the acknowledgement was not
 * recorded.  Now that next set is held behind it (INV-2; admit.h A8); the
 * member-introduction case is held_introduction_fails_exchange.
 */
Test(converge, inv2_held_set_blocks_others)
{
    sim_world *w = world(1006);
    const char *h1[] = {"c/h1/{\"v\":1}"}, *h2[] = {"c/h2/{\"v\":2}"};
    const char *b1[] = {"c/b1/{\"v\":3}"};
    sim_outcome o;

    sync_ok(w, 0, 1);
    sync_ok(w, 0, 2);                 /* branch2 knows the members */
    w->node[0].skew += 5 * 60 * 1000; /* the hub's clock jumps ahead */
    sim_advance(w, 0);
    sim_local(w, 0, h1, 1);
    sim_local(w, 0, h2, 1);
    sim_local(w, 1, b1, 1);
    sync_ok(w, 1, 0);
    cr_assert(sim_sync(w, 0, 2, &o));
    cr_assert(o.st.held > 0, "the hub's set 5 minutes ahead was not held");
    cr_assert(o.apply == BS_OK,
              "a held set made the rest of the exchange fail: %s (%s)",
              bs_strerror(o.apply), o.msg);
    expect_record(w, 2, "c", "b1", "{\"id\":\"b1\",\"v\":3}",
                  "another origin's change behind a held set");
}

/*
 * Regression (fixed), seeds with the hub 5 minutes ahead (e.g. 4, 8, 12
 * ...): the hub's set that introduces the members is held by a branch
 * (reliability.md S10), so in the same exchange the next set of another
 * origin was "not a member of this infobase" at apply time (pass 1 had
 * admitted it as introduced earlier in the exchange) and bs_xchg_apply
 * failed the whole exchange with BS_EFORGED: nothing after it was applied
 * or held, and the sender's acknowledgement was not recorded, until the
 * clock caught up.  Now such sets wait behind the held introduction
 * (admit.h A3), as sets of the held origin
 * itself do.
 */
Test(converge, held_introduction_fails_exchange)
{
    sim_world *w = world_skewed(1007, 5 * 60 * 1000);
    const char *b1[] = {"c/b1/{\"v\":1}"};
    sim_outcome o;

    sync_ok(w, 0, 1); /* joins; the introduction is held */
    sim_local(w, 1, b1, 1);
    sync_ok(w, 1, 0);
    cr_assert(sim_sync(w, 0, 2, &o));
    cr_assert(o.verify == BS_OK && o.st.joined, "%s", o.msg);
    cr_assert(o.apply == BS_OK,
              "a held member introduction made the exchange fail: %s (%s)",
              bs_strerror(o.apply), o.msg);
    sim_advance(w, 5 * 60 * 1000); /* the clocks catch up */
    sync_ok(w, 0, 2);
    expect_record(w, 2, "c", "b1", "{\"id\":\"b1\",\"v\":1}",
                  "once the clock caught up");
}
