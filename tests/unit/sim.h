/*
 * sim.h - an in-memory world of branchsync nodes for deterministic
 * simulation tests (RELIABILITY A1-A4).
 *
 * Every node is a real node directory (node/node.h) on tmpfs with its own
 * LMDB store; only the transport and the wall clocks are simulated.  An
 * exchange is put together the way replication/bundle.c does it, without
 * the file: the sender's read transaction gives the envelope and the sets
 * the receiver lacks (copied: they are borrowed from the transaction), the
 * sender's message number grows (bump_sent), and the receiver decodes,
 * verifies and applies them (exchange.h).  Between the two the test may
 * drop, duplicate, reorder or replay sets.
 *
 * Determinism: all choices come from one seeded PRNG (sim_rng), the clocks
 * are fake (one uint64 of milliseconds per node, the ctx of its bs_clock),
 * and libsodium's random bytes (node keys, incarnations, the infobase ID)
 * come from a second seeded stream installed with
 * randombytes_set_implementation() before sodium_init().  So one seed
 * always gives the same keys, hence the same HLC tie-breaks, the same
 * trace and the same final digest.
 *
 * Failures report the seed and how to rerun it (SIM_CHECK).
 */
#ifndef BS_TEST_SIM_H
#define BS_TEST_SIM_H

#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../node/node.h"
#include "../../replication/conflict.h"
#include "../../replication/digest.h"
#include "../../replication/exchange.h"
#include "../../replication/json.h"
#include "../../replication/local.h"
#include "../../replication/streams.h"
#include "../../replication/collections.h"
#include "../../replication/members.h"

#define SIM_FN static __attribute__((unused))

#define SIM_NODES    5 /* node 0 is the hub */
#define SIM_HIST     4 /* old exchanges kept per directed link, for replay */
#define SIM_SKEW_MS  60000u
#define SIM_EPOCH_MS 1767225600000ull /* 2026-01-01 */
#define SIM_KEYLEN   (BS_PK_LEN + BS_INC_LEN)

/* ---- PRNG (splitmix64) ---- */

static inline uint64_t
sim_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t
sim_below(uint64_t *s, uint64_t n)
{
    return n ? sim_mix(s) % n : 0;
}

/* True with probability pm / 1000. */
static inline int
sim_chance(uint64_t *s, unsigned pm)
{
    return sim_below(s, 1000) < pm;
}

/* ---- deterministic libsodium randomness (test only) ---- */

static uint64_t sim_sodium_state;

static const char *
sim_rb_name(void)
{
    return "branchsync-sim";
}

static uint32_t
sim_rb_random(void)
{
    return (uint32_t)(sim_mix(&sim_sodium_state) >> 32);
}

static void
sim_rb_buf(void *const buf, const size_t n)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = sim_mix(&sim_sodium_state);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

static randombytes_implementation sim_rb = {
    sim_rb_name, sim_rb_random, NULL, NULL, sim_rb_buf, NULL,
};

/* Install the seeded randombytes source, then initialise libsodium. */
SIM_FN void
sim_crypto_init(void)
{
    cr_assert_eq(randombytes_set_implementation(&sim_rb), 0);
    cr_assert_eq(bs_crypto_init(), BS_OK);
}

/* ---- the world ---- */

/* One exchange as carried: the encoded envelope and the sets. */
typedef struct sim_xmsg {
    int from, to;
    uint8_t *env;
    size_t nenv;
    uint8_t **set;
    size_t *len;
    size_t nsets, cap;
    uint64_t message_no;
    uint8_t sender_inc[BS_INC_LEN];
} sim_xmsg;

typedef struct sim_node {
    char dir[200];
    char name[16];
    bs_node *n;
    const uint8_t *sk;
    uint64_t ms;  /* this node's wall clock (ctx of its bs_clock) */
    int64_t skew; /* wall - true time */
    uint8_t pk[BS_PK_LEN];
    char id[BS_NODE_ID_LEN + 1];
    int has_backup;
    char backup[240];
} sim_node;

typedef struct sim_world {
    uint64_t seed, rng;
    char dir[160];
    uint64_t now; /* true simulated time, ms */
    sim_node node[SIM_NODES];
    int paired[SIM_NODES][SIM_NODES];
    sim_xmsg hist[SIM_NODES][SIM_NODES][SIM_HIST];
    unsigned nhist[SIM_NODES][SIM_NODES]; /* total kept, ring index */
    bs_hash_state trace;                  /* A4: event trace hash */
} sim_world;

/* ---- failure reporting ---- */

/*
 * A failing check formats its message and, when a seed runner is catching
 * (sim_catch set), jumps back to it so that the remaining seeds still run;
 * otherwise it fails the Criterion test at once.  A jump may leave a
 * transaction open: the runner then leaks that seed's handles on purpose
 * and only removes its directory.
 */
static jmp_buf *sim_catch;
static char sim_failmsg[4096];

static void sim_fail(const sim_world *w, const char *file, int line,
                     const char *expr, const char *fmt, ...) BS_PRINTF(5, 6);

static void
sim_fail(const sim_world *w, const char *file, int line, const char *expr,
         const char *fmt, ...)
{
    char msg[3000];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(sim_failmsg, sizeof sim_failmsg,
             "seed %llu: %s\n    [%s failed at %s:%d]\n    rerun: "
             "BS_SEED=%llu ./build/tests/test_converge",
             (unsigned long long)w->seed, msg, expr, file, line,
             (unsigned long long)w->seed);
    if (sim_catch != NULL)
        longjmp(*sim_catch, 1);
    cr_assert_fail("%s", sim_failmsg);
}

#define SIM_CHECK(w, cond, ...)                                                \
    do {                                                                       \
        if (!(cond))                                                           \
            sim_fail((w), __FILE__, __LINE__, #cond, __VA_ARGS__);             \
    } while (0)

/* A product call that must succeed. */
#define SIM_OK(w, call, errp)                                                  \
    do {                                                                       \
        bs_err sim_rv_ = (call);                                               \
        SIM_CHECK((w), sim_rv_ == BS_OK, "%s: %s", #call,                      \
                  bs_errmsg((errp), sim_rv_));                                 \
    } while (0)

/* BS_SIM_VERBOSE=1: narrate the run on stderr (for triage). */
static int sim_verbose;

#define SIM_SAY(...)                                                           \
    do {                                                                       \
        if (sim_verbose)                                                       \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

static inline void
sim_trace(sim_world *w, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t v[4] = {a, b, c, d};

    bs_hash_update(&w->trace, v, sizeof v);
}

/* ---- clocks ---- */

static uint64_t
sim_clock_now(void *ctx)
{
    return *(const uint64_t *)ctx;
}

static inline bs_clock
sim_clock(sim_node *n)
{
    return (bs_clock){sim_clock_now, &n->ms};
}

/* Move true time forward by dt ms; every node's wall clock follows. */
SIM_FN void
sim_advance(sim_world *w, uint64_t dt)
{
    w->now += dt;
    for (int i = 0; i < SIM_NODES; i++)
        w->node[i].ms = (uint64_t)((int64_t)w->now + w->node[i].skew);
}

/* ---- node directories ---- */

static int
sim_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

SIM_FN void
sim_rmtree(const char *dir)
{
    nftw(dir, sim_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temporary root: tmpfs when there is one. */
SIM_FN void
sim_mkroot(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/dev/shm/bs_%s_XXXXXX", tag);
    if (mkdtemp(buf) != NULL)
        return;
    snprintf(buf, n, "/tmp/bs_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

SIM_FN void
sim_node_open(sim_world *w, int i)
{
    sim_node *s = &w->node[i];
    bs_errbuf err = {{0}};

    SIM_OK(w, bs_node_open(s->dir, 0, &s->n, &err), &err);
    SIM_OK(w, bs_node_secret(s->n, &s->sk, &err), &err);
    memcpy(s->pk, s->n->meta.pk, BS_PK_LEN);
    bs_node_id_format(s->pk, s->id);
}

SIM_FN void
sim_node_close(sim_world *w, int i)
{
    bs_node_close(w->node[i].n);
    w->node[i].n = NULL;
    w->node[i].sk = NULL;
}

/* The node's current metadata (it changes on join and restore). */
SIM_FN bs_meta
sim_meta(sim_world *w, int i)
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_meta m;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_meta_load(t, &m, &err), &err);
    bs_txn_abort(t);
    return m;
}

/* ---- pairing (tools/cmd_sync.c, peer add) ---- */

typedef struct sim_pairing {
    sim_world *w;
    int self;
    const int *peers;
    int npeers;
} sim_pairing;

static bs_field
sim_text_field(const char *name, const char *val)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = BS_VTEXT;
    f.val.s = val;
    f.val.len = (uint32_t)strlen(val);
    return f;
}

/* Peer records for every peer; on the hub also their `_members` records,
 * all in one transaction so the hub's first change set introduces them. */
static bs_err
sim_pair_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    sim_pairing *p = arg;
    sim_node *self = &p->w->node[p->self];
    int hub = self->n->meta.role == BS_ROLE_HUB;
    bs_local l;
    bs_err rv = BS_OK;

    memset(&l, 0, sizeof l);
    if (hub &&
        (rv = bs_local_begin(&l, t, self->sk, sim_clock(self), err)) != BS_OK)
        goto out;
    for (int k = 0; k < p->npeers && rv == BS_OK; k++) {
        sim_node *o = &p->w->node[p->peers[k]];
        bs_peer peer;

        memset(&peer, 0, sizeof peer);
        snprintf(peer.name, sizeof peer.name, "%s", o->name);
        snprintf(peer.endpoint, sizeof peer.endpoint, "tcp://127.0.0.1:%d",
                 7400 + p->peers[k]);
        memcpy(peer.pk, o->pk, BS_PK_LEN);
        snprintf(peer.schedule, sizeof peer.schedule, "manual");
        peer.created_ms = self->ms;
        if ((rv = bs_peer_put(t, &peer)) != BS_OK)
            break;
        if (hub) {
            bs_field f[3];
            f[0] = sim_text_field("name", o->name);
            memset(&f[1], 0, sizeof f[1]);
            f[1].name = "revoked";
            f[1].namelen = 7;
            f[1].val.type = BS_VFALSE;
            f[2] = sim_text_field("role", "branch");
            rv = bs_local_put(&l, BS_SYS_MEMBERS, o->id, f, 3, err);
        }
    }
    if (hub && rv == BS_OK)
        rv = bs_local_finish(&l, err);
out:
    if (hub)
        bs_local_fini(&l);
    return rv;
}

/* Pair node `self` with peers[0..n). */
SIM_FN void
sim_pair(sim_world *w, int self, const int *peers, int n)
{
    sim_pairing p = {w, self, peers, n};
    bs_errbuf err = {{0}};

    SIM_OK(w, bs_store_write(w->node[self].n->store, sim_pair_txn, &p, &err),
           &err);
    for (int k = 0; k < n; k++)
        w->paired[self][peers[k]] = 1;
}

/*
 * Create the world: a hub and SIM_NODES - 1 branches under a fresh root,
 * each paired with the hub (both sides).  Clocks start at SIM_EPOCH_MS plus
 * the given skews.
 */
SIM_FN void
sim_world_init(sim_world *w, uint64_t seed, const int64_t *skew)
{
    bs_errbuf err = {{0}};
    int branches[SIM_NODES - 1], hub = 0;

    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->rng = seed * 0x2545f4914f6cdd1dull + 1;
    sim_sodium_state = seed ^ 0x5eedf00dcafe1234ull;
    bs_hash_init(&w->trace);
    sim_mkroot(w->dir, sizeof w->dir, "converge");
    w->now = SIM_EPOCH_MS;
    for (int i = 0; i < SIM_NODES; i++) {
        sim_node *s = &w->node[i];
        bs_node_init in;

        char dir[sizeof s->dir];

        snprintf(s->name, sizeof s->name, i == 0 ? "head" : "branch%d", i);
        snprintf(dir, sizeof dir, "%s/%s", w->dir, s->name);
        memcpy(s->dir, dir, sizeof dir);
        s->skew = skew[i];
        in = (bs_node_init){s->name, i == 0 ? BS_ROLE_HUB : BS_ROLE_BRANCH,
                            NULL};
        SIM_OK(w, bs_node_create(s->dir, &in, &err), &err);
        sim_node_open(w, i);
    }
    sim_advance(w, 0);
    for (int i = 1; i < SIM_NODES; i++) {
        branches[i - 1] = i;
        sim_pair(w, i, &hub, 1);
    }
    sim_pair(w, 0, branches, SIM_NODES - 1);
}

SIM_FN void
sim_xmsg_free(sim_xmsg *m)
{
    for (size_t i = 0; i < m->nsets; i++)
        free(m->set[i]);
    free(m->set);
    free(m->len);
    free(m->env);
    memset(m, 0, sizeof *m);
}

SIM_FN void
sim_world_fini(sim_world *w)
{
    for (int i = 0; i < SIM_NODES; i++) {
        if (w->node[i].n != NULL)
            sim_node_close(w, i);
        for (int j = 0; j < SIM_NODES; j++)
            for (int k = 0; k < SIM_HIST; k++)
                sim_xmsg_free(&w->hist[i][j][k]);
    }
    sim_rmtree(w->dir);
}

/* ---- sending ---- */

static bs_err
sim_emit(void *ctx, bs_slice set)
{
    sim_xmsg *m = ctx;

    if (m->nsets == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        uint8_t **ns = realloc(m->set, cap * sizeof *ns);
        if (ns == NULL)
            return BS_ENOMEM;
        m->set = ns;
        size_t *nl = realloc(m->len, cap * sizeof *nl);
        if (nl == NULL)
            return BS_ENOMEM;
        m->len = nl;
        m->cap = cap;
    }
    if ((m->set[m->nsets] = malloc(set.n ? set.n : 1)) == NULL)
        return BS_ENOMEM;
    memcpy(m->set[m->nsets], set.p, set.n);
    m->len[m->nsets++] = set.n;
    return BS_OK;
}

static bs_err
sim_bump_sent(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_peer p;
    bs_err rv;

    (void)err;
    if ((rv = bs_peer_get(t, arg, &p)) != BS_OK)
        return rv;
    p.sent_no++;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

/*
 * Build the exchange from -> to into m (as bundle.c's export does) and
 * count it as sent.  0 when `from` cannot send yet (not joined).
 */
SIM_FN int
sim_send(sim_world *w, int from, int to, sim_xmsg *m)
{
    sim_node *s = &w->node[from];
    bs_errbuf err = {{0}};
    bs_envelope e;
    uint64_t nsets = 0;
    bs_meta meta;
    bs_peer p;
    bs_txn *t;

    memset(m, 0, sizeof *m);
    m->from = from;
    m->to = to;
    SIM_OK(w, bs_store_read(s->n->store, &t, &err), &err);
    SIM_OK(w, bs_meta_load(t, &meta, &err), &err);
    /* An unjoined node sends its envelope alone (bs_xchg_collect sends
     * nothing before joining): the hub learns where to start. */
    SIM_OK(w, bs_peer_get(t, w->node[to].name, &p), NULL);
    SIM_OK(w, bs_xchg_envelope(t, &meta, &p, p.sent_no + 1, s->ms, &e), NULL);
    SIM_OK(w, bs_envelope_encode(&e, &m->env, &m->nenv), NULL);
    m->message_no = e.message_no;
    memcpy(m->sender_inc, e.sender_inc, BS_INC_LEN);
    bs_envelope_fini(&e);
    SIM_OK(w, bs_xchg_collect(t, &meta, &p, sim_emit, m, &nsets), NULL);
    SIM_CHECK(w, nsets == m->nsets, "collect counted %llu sets, emitted %zu",
              (unsigned long long)nsets, m->nsets);
    bs_peer_fini(&p);
    bs_txn_abort(t);
    SIM_OK(w,
           bs_store_write(s->n->store, sim_bump_sent, w->node[to].name, &err),
           &err);
    return 1;
}

/* Keep a copy of m in the link's history (for whole-exchange replays). */
SIM_FN void
sim_keep(sim_world *w, const sim_xmsg *m)
{
    unsigned k = w->nhist[m->from][m->to]++ % SIM_HIST;
    sim_xmsg *h = &w->hist[m->from][m->to][k];

    sim_xmsg_free(h);
    h->from = m->from;
    h->to = m->to;
    h->message_no = m->message_no;
    memcpy(h->sender_inc, m->sender_inc, BS_INC_LEN);
    h->env = malloc(m->nenv);
    cr_assert_not_null(h->env);
    memcpy(h->env, m->env, m->nenv);
    h->nenv = m->nenv;
    for (size_t i = 0; i < m->nsets; i++)
        cr_assert_eq(sim_emit(h, (bs_slice){m->set[i], m->len[i]}), BS_OK);
}

/* ---- receiving ---- */

typedef struct sim_outcome {
    bs_err verify; /* bs_xchg_verify */
    bs_err apply;  /* bs_xchg_apply (BS_OK when not reached) */
    bs_xstats st;
    char msg[BS_ERRMSG_LEN];
} sim_outcome;

/* Deliver an envelope and sets (in this order) to node `to`. */
SIM_FN void
sim_deliver(sim_world *w, int to, const uint8_t *env, size_t nenv,
            uint8_t *const *set, const size_t *len, size_t n, sim_outcome *o)
{
    sim_node *r = &w->node[to];
    bs_errbuf err = {{0}};
    bs_inbound in;
    bs_accept acc;

    memset(o, 0, sizeof *o);
    memset(&in, 0, sizeof in);
    SIM_OK(w, bs_envelope_decode(env, nenv, &in.env, &err), &err);
    in.sets = calloc(n + 1, sizeof *in.sets);
    cr_assert_not_null(in.sets);
    for (size_t i = 0; i < n; i++) {
        SIM_OK(w, bs_changeset_decode(set[i], len[i], &in.sets[i], &err), &err);
        in.nsets++;
    }
    o->verify =
        bs_xchg_verify(r->n->store, &in, &acc, sim_clock(r), SIM_SKEW_MS, &err);
    if (o->verify == BS_OK) {
        o->apply = bs_xchg_apply(r->n->store, r->sk, &in, &acc, sim_clock(r),
                                 SIM_SKEW_MS, &o->st, &err);
        bs_peer_fini(&acc.peer);
    }
    if (o->verify != BS_OK || o->apply != BS_OK)
        snprintf(o->msg, sizeof o->msg, "%s",
                 bs_errmsg(&err, o->verify != BS_OK ? o->verify : o->apply));
    bs_inbound_fini(&in);
    SIM_SAY("    -> %s: %zu sets delivered: verify %s apply %s; applied %llu "
            "dup %llu held %llu changes %llu conflicts %llu%s%s %s\n",
            r->name, n, bs_strerror(o->verify), bs_strerror(o->apply),
            (unsigned long long)o->st.sets, (unsigned long long)o->st.dup_sets,
            (unsigned long long)o->st.held, (unsigned long long)o->st.changes,
            (unsigned long long)o->st.conflicts, o->st.replay ? " REPLAY" : "",
            o->st.joined ? " JOINED" : "", o->msg);
    sim_trace(w, 0x5e7, ((uint64_t)o->verify << 8) | o->apply,
              o->st.sets | o->st.dup_sets << 20 | o->st.held << 40,
              o->st.changes | o->st.conflicts << 32 |
                  (uint64_t)o->st.replay << 60 | (uint64_t)o->st.joined << 61);
}

/* ---- reading node state ---- */

SIM_FN void
sim_digest(sim_world *w, int i, uint8_t out[BS_HASH_LEN], uint64_t *nrec)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_digest(t, NULL, 0, out, nrec, &err), &err);
    bs_txn_abort(t);
}

SIM_FN void
sim_streams(sim_world *w, int i, bs_streamtab *tab)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_streams_load(t, tab), NULL);
    bs_txn_abort(t);
}

/* Highest contiguous seq node i holds of stream key (0 if none). */
static inline uint64_t
sim_tab_seq(bs_streamtab *tab, const uint8_t *key)
{
    bs_stream *s = bs_streams_find(tab, key, key + BS_PK_LEN);

    return s ? s->seq : 0;
}

SIM_FN uint64_t
sim_count(sim_world *w, int i, bs_db db)
{
    bs_errbuf err = {{0}};
    uint64_t n = 0;
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_txn_count(t, db, &n), NULL);
    bs_txn_abort(t);
    return n;
}

SIM_FN uint64_t
sim_conflicts(sim_world *w, int i)
{
    bs_errbuf err = {{0}};
    uint64_t open, all;
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_conflict_count(t, &open, &all), NULL);
    bs_txn_abort(t);
    return all;
}

/* Conflicts node i recorded for coll/id/field (keys: coll \0 id \0 field
 * \0 conflict ID, conflict.h). */
SIM_FN uint64_t
sim_conflicts_of(sim_world *w, int i, const char *coll, const char *id,
                 const char *field)
{
    bs_errbuf err = {{0}};
    uint8_t pre[BS_RECKEY_MAX + BS_FIELD_NAME_MAX + 2];
    size_t n = 0, l;
    uint64_t count = 0;
    bs_cursor *c;
    bs_slice k, v;
    bs_txn *t;
    bs_err rv;

    l = strlen(coll) + 1;
    memcpy(pre + n, coll, l);
    n += l;
    l = strlen(id) + 1;
    memcpy(pre + n, id, l);
    n += l;
    l = strlen(field) + 1;
    memcpy(pre + n, field, l);
    n += l;
    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_cursor_open(t, BS_DB_CONFLICTS, &c), NULL);
    for (rv = bs_cursor_seek(c, bs_mem(pre, n), &k, &v);
         rv == BS_OK && k.n >= n && memcmp(k.p, pre, n) == 0;
         rv = bs_cursor_next(c, &k, &v))
        count++;
    bs_cursor_close(c);
    bs_txn_abort(t);
    return count;
}

/* The peer record node i keeps for node j. */
SIM_FN void
sim_peer(sim_world *w, int i, int j, bs_peer *p)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_peer_get(t, w->node[j].name, p), NULL);
    bs_txn_abort(t);
}

/* ---- scripted use (the regression tests) ---- */

typedef struct sim_script {
    sim_world *w;
    int node;
    const char *const *ops;
    int n;
} sim_script;

/* ops: "coll/id/{json}" upserts, "coll/id/-" deletes. */
static bs_err
sim_script_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    sim_script *sc = arg;
    sim_node *nd = &sc->w->node[sc->node];
    bs_local l;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    rv = bs_local_begin(&l, t, nd->sk, sim_clock(nd), err);
    for (int i = 0; i < sc->n && rv == BS_OK; i++) {
        char coll[80], id[80];
        const char *p = sc->ops[i], *s1 = strchr(p, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL, *jid;
        bs_field *f;
        size_t nf;

        cr_assert(s2 != NULL, "bad op %s", p);
        snprintf(coll, sizeof coll, "%.*s", (int)(s1 - p), p);
        snprintf(id, sizeof id, "%.*s", (int)(s2 - s1 - 1), s1 + 1);
        if (strcmp(s2 + 1, "-") == 0) {
            rv = bs_local_del(&l, coll, id, err);
            continue;
        }
        rv = bs_json_fields(s2 + 1, strlen(s2 + 1), &a, &jid, &f, &nf, err);
        if (rv == BS_OK)
            rv = bs_local_put(&l, coll, id, f, nf, err);
    }
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    bs_arena_fini(&a);
    return rv;
}

/* Run ops as one local transaction on node i. */
SIM_FN void
sim_local(sim_world *w, int i, const char *const *ops, int n)
{
    sim_script sc = {w, i, ops, n};
    bs_errbuf err = {{0}};

    SIM_OK(w, bs_store_write(w->node[i].n->store, sim_script_txn, &sc, &err),
           &err);
}

/* coll/id on node i as JSON if live, else NULL (malloc'd). */
SIM_FN char *
sim_get(sim_world *w, int i, const char *coll, const char *id)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    bs_errbuf err = {{0}};
    bs_streamtab tab;
    bs_order order = {0, bs_streams_key, &tab};
    bs_record r;
    bs_arena a;
    bs_slice v;
    bs_txn *t;
    char *json = NULL;

    bs_arena_init(&a);
    SIM_OK(w, bs_store_read(w->node[i].n->store, &t, &err), &err);
    SIM_OK(w, bs_streams_load(t, &tab), NULL);
    if (bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, klen), &v) == BS_OK) {
        SIM_OK(w, bs_record_decode(&r, v.p, v.n, &a), NULL);
        if (bs_record_live(&r, &order))
            json = bs_json_record(id, strlen(id), &r);
    }
    bs_streams_fini(&tab);
    bs_txn_abort(t);
    bs_arena_fini(&a);
    return json;
}

/* One whole exchange from -> to, no faults; 0 if `from` cannot send. */
SIM_FN int
sim_sync(sim_world *w, int from, int to, sim_outcome *o)
{
    sim_xmsg m;

    memset(o, 0, sizeof *o);
    if (!sim_send(w, from, to, &m))
        return 0;
    sim_deliver(w, to, m.env, m.nenv, m.set, m.len, m.nsets, o);
    sim_xmsg_free(&m);
    return 1;
}

#endif
