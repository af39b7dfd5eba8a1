/*
 * sim.h - an in-memory world of branchsync nodes for deterministic
 * simulation tests (docs/reliability.md A1-A4).
 *
 * Every node is a real node directory on tmpfs with its own LMDB store,
 * made, paired and written to through the test fixture and the core API
 * (tests/lib/fixture.h); only the transport and the wall clocks are
 * simulated.  An exchange is the sender's exchange file (bst_export, which
 * also counts the message as sent), taken apart into its envelope and
 * sets; the receiver decodes, verifies and applies them as an import does
 * (exchange.h: bs_xchg_verify, then bs_xchg_apply).  Between the two the
 * test may drop, duplicate, reorder or replay sets.
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

#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../replication/exchange.h"
#include "../../replication/members.h"
#include "../../replication/setlog.h"
#include "../../replication/status.h"
#include "../../replication/streams.h"
#include "../lib/fixture.h"

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
    bst_node t;   /* dir, name, the open node and its core (fixture.h) */
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

/* ---- nodes ---- */

SIM_FN void
sim_node_open(sim_world *w, int i)
{
    sim_node *s = &w->node[i];

    bst_node_reopen(&s->t);
    memcpy(s->pk, s->t.n->meta.pk, BS_PK_LEN);
    bs_node_id_format(s->pk, s->id);
}

SIM_FN void
sim_node_close(sim_world *w, int i)
{
    bst_node_free(&w->node[i].t);
}

/* The node's current metadata (it changes on join and restore). */
SIM_FN bs_meta
sim_meta(sim_world *w, int i)
{
    return bst_meta(&w->node[i].t);
}

/* Pair node `self` with peers[0..n), as `peer add` does (pairing.h: on
 * the hub each pairing also introduces the peer in `_members`). */
SIM_FN void
sim_pair(sim_world *w, int self, const int *peers, int n)
{
    for (int k = 0; k < n; k++) {
        bst_pair(&w->node[self].t, &w->node[peers[k]].t);
        w->paired[self][peers[k]] = 1;
    }
}

/*
 * Create the world: a hub and SIM_NODES - 1 branches under a fresh root,
 * each paired with the hub (both sides).  Clocks start at SIM_EPOCH_MS plus
 * the given skews.
 */
SIM_FN void
sim_world_init(sim_world *w, uint64_t seed, const int64_t *skew)
{
    int branches[SIM_NODES - 1], hub = 0;

    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->rng = seed * 0x2545f4914f6cdd1dull + 1;
    sim_sodium_state = seed ^ 0x5eedf00dcafe1234ull;
    bs_hash_init(&w->trace);
    bst_root(w->dir, sizeof w->dir, "converge");
    w->now = SIM_EPOCH_MS;
    for (int i = 0; i < SIM_NODES; i++) {
        sim_node *s = &w->node[i];
        bs_clock clock = sim_clock(s);
        char name[16];

        snprintf(name, sizeof name, i == 0 ? "head" : "branch%d", i);
        s->skew = skew[i];
        bst_node_new(&s->t, w->dir, name, i == 0 ? BS_ROLE_HUB : BS_ROLE_BRANCH,
                     &clock);
        memcpy(s->pk, s->t.n->meta.pk, BS_PK_LEN);
        bs_node_id_format(s->pk, s->id);
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
        if (w->node[i].t.n != NULL)
            sim_node_close(w, i);
        for (int j = 0; j < SIM_NODES; j++)
            for (int k = 0; k < SIM_HIST; k++)
                sim_xmsg_free(&w->hist[i][j][k]);
    }
    bst_rmtree(w->dir);
}

/* After a failed check (perhaps inside a transaction): free what the
 * world holds but leave its stores open (leaked), and remove its
 * directory. */
SIM_FN void
sim_world_abandon(sim_world *w)
{
    for (int i = 0; i < SIM_NODES; i++)
        for (int j = 0; j < SIM_NODES; j++)
            for (int k = 0; k < SIM_HIST; k++)
                sim_xmsg_free(&w->hist[i][j][k]);
    if (w->dir[0] != '\0')
        bst_rmtree(w->dir);
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

/*
 * Build the exchange from -> to into m: the exchange file `from` writes
 * for `to` (bst_export: the envelope, the sets `to` lacks, and the message
 * counted as sent), split into its frames.  An unjoined node's file holds
 * its envelope alone: the hub learns where to start.  Returns 1 (the
 * sender can always send).
 */
SIM_FN int
sim_send(sim_world *w, int from, int to, sim_xmsg *m)
{
    sim_node *s = &w->node[from];
    bs_errbuf err = {{0}};
    bst_frames fr;
    bs_envelope e;
    char path[sizeof w->dir + 2 * sizeof s->t.name + 16];
    uint8_t *file;
    size_t n;

    memset(m, 0, sizeof *m);
    m->from = from;
    m->to = to;
    snprintf(path, sizeof path, "%s/%s-to-%s.bsx", w->dir, s->t.name,
             w->node[to].t.name);
    SIM_OK(w, bst_export(&s->t, w->node[to].t.name, path, &err), &err);
    file = bst_read_file(path, &n);
    unlink(path);
    SIM_CHECK(w, bst_frames_split(file, n, &fr), "%s: bad exchange file", path);
    m->env = malloc(fr.env.n + 1);
    cr_assert_not_null(m->env);
    memcpy(m->env, fr.env.p, fr.env.n);
    m->nenv = fr.env.n;
    for (size_t i = 0; i < fr.nsets; i++)
        cr_assert_eq(sim_emit(m, fr.sets[i]), BS_OK);
    bst_frames_fini(&fr);
    free(file);
    SIM_OK(w, bs_envelope_decode(m->env, m->nenv, &e, &err), &err);
    m->message_no = e.message_no;
    memcpy(m->sender_inc, e.sender_inc, BS_INC_LEN);
    bs_envelope_fini(&e);
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
    bs_store *store = r->t.n->store;
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
    o->verify = bs_xchg_verify(store, &in, &acc, sim_clock(r), SIM_SKEW_MS,
                               r->t.core.retention_ms, &err);
    if (o->verify == BS_OK) {
        o->apply = bs_xchg_apply(store, r->t.core.sk, &in, &acc, sim_clock(r),
                                 SIM_SKEW_MS, &o->st, &err);
        bs_peer_fini(&acc.peer);
    }
    if (o->verify != BS_OK || o->apply != BS_OK)
        snprintf(o->msg, sizeof o->msg, "%s",
                 bs_errmsg(&err, o->verify != BS_OK ? o->verify : o->apply));
    bs_inbound_fini(&in);
    SIM_SAY("    -> %s: %zu sets delivered: verify %s apply %s; applied %llu "
            "dup %llu held %llu changes %llu conflicts %llu%s%s %s\n",
            r->t.name, n, bs_strerror(o->verify), bs_strerror(o->apply),
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
    bst_digest(&w->node[i].t, out, nrec);
}

SIM_FN void
sim_streams(sim_world *w, int i, bs_streamtab *tab)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].t.n->store, &t, &err), &err);
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

/* What node i stores, counted (fixture.h). */
SIM_FN bst_counts
sim_counts(sim_world *w, int i)
{
    bst_counts c;

    bst_count(&w->node[i].t, &c);
    return c;
}

/* Conflicts node i recorded (open or settled) for coll/id/field. */
SIM_FN uint64_t
sim_conflicts_of(sim_world *w, int i, const char *coll, const char *id,
                 const char *field)
{
    return bst_conflicts_of(&w->node[i].t, 1, coll, id, field, NULL);
}

/* The peer record node i keeps for node j. */
SIM_FN void
sim_peer(sim_world *w, int i, int j, bs_peer *p)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    SIM_OK(w, bs_store_read(w->node[i].t.n->store, &t, &err), &err);
    SIM_OK(w, bs_peer_get(t, w->node[j].t.name, p), NULL);
    bs_txn_abort(t);
}

/* ---- scripted use (the regression tests) ---- */

/* Run ops ("coll/id/{json}" upserts, "coll/id/-" deletes) as one local
 * transaction on node i (bst_write). */
SIM_FN void
sim_local(sim_world *w, int i, const char *const *ops, int n)
{
    char coll[8][80], id[8][80];
    bst_op op[8];
    bs_errbuf err = {{0}};

    cr_assert(n <= 8, "too many ops");
    for (int k = 0; k < n; k++) {
        const char *p = ops[k], *s1 = strchr(p, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

        cr_assert(s2 != NULL, "bad op %s", p);
        snprintf(coll[k], sizeof coll[k], "%.*s", (int)(s1 - p), p);
        snprintf(id[k], sizeof id[k], "%.*s", (int)(s2 - s1 - 1), s1 + 1);
        op[k] =
            (bst_op){coll[k], id[k], strcmp(s2 + 1, "-") == 0 ? NULL : s2 + 1};
    }
    SIM_OK(w, bst_write(&w->node[i].t, op, (size_t)n, NULL, &err), &err);
}

/* coll/id on node i as JSON if live, else NULL (malloc'd). */
SIM_FN char *
sim_get(sim_world *w, int i, const char *coll, const char *id)
{
    return bst_get(&w->node[i].t, coll, id);
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
