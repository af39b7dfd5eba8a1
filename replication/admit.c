/*
 * admit.c - the admission rules (admit.h), checked in their order.
 */
#include "admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "compact.h"
#include "quarantine.h"
#include "scope.h"
#include "setlog.h"
#include "snapshot.h"

const char *
bs_hold_reason_text(bs_hold_reason r)
{
    switch (r) {
    case BS_HOLD_CLOCK:
        return "its clock is ahead of ours";
    case BS_HOLD_BEHIND:
        return "behind a held set";
    case BS_HOLD_INTRODUCTION:
        return "its origin is introduced by a held set";
    case BS_HOLD_HUB:
        return "it waits for the hub's changes it saw";
    default:
        return "held";
    }
}

void
bs_admission_init(bs_admission *ad, bs_txn *t, const bs_meta *m,
                  bs_streamtab *tab, int dry, uint64_t now_ms,
                  uint64_t max_skew_ms, bs_arena *a)
{
    memset(ad, 0, sizeof *ad);
    bs_owner_notes_init(&ad->notes);
    ad->txn = t;
    ad->meta = *m;
    ad->streams = tab;
    ad->dry = dry;
    ad->now_ms = now_ms;
    ad->max_skew_ms = max_skew_ms;
    ad->arena = a;
}

/* A set a dry run would hold. */
struct bs_dry_held {
    uint8_t key[BS_STREAM_KEY_LEN];
    uint64_t first, last;
};

/* The stored rule versions of one collection, oldest first. */
struct bs_rule_cache {
    char name[BS_COLLECTION_MAX + 1];
    size_t n;
    struct bs_dry_rule *v;
};

/* A rule version a hub set earlier in a dry run brings. */
struct bs_dry_rule {
    bs_collection rules;
    bs_rule_version ver;
};

/* Rules change (a hub set brings a version): forget what was cached. */
static void
forget_rules(bs_admission *ad)
{
    for (size_t i = 0; i < ad->nrcache; i++)
        free(ad->rcache[i].v);
    free(ad->rcache);
    ad->rcache = NULL;
    ad->nrcache = 0;
    ad->nopen = 0;
}

void
bs_admission_fini(bs_admission *ad)
{
    free(ad->learnt);
    free(ad->intro);
    free(ad->dheld);
    free(ad->drules);
    free(ad->touched);
    bs_owner_notes_fini(&ad->notes);
    forget_rules(ad);
    free(ad->ch);
    free(ad->chused);
    ad->ch = NULL;
    ad->chused = NULL;
    ad->chcap = ad->nchused = 0;
    ad->learnt = ad->intro = NULL;
    ad->dheld = NULL;
    ad->drules = NULL;
    ad->touched = NULL;
    ad->nlearnt = ad->nintro = ad->ndheld = ad->ndrules = 0;
    ad->ntouched = ad->ntouchslot = 0;
}

void
bs_admission_forget_held(bs_admission *ad)
{
    free(ad->intro);
    ad->intro = NULL;
    ad->nintro = 0;
    ad->intro_loaded = 0;
}

/* ---- membership (A3) ---- */

static bs_member *
find_member(bs_member *v, size_t n, const uint8_t *pk)
{
    for (size_t i = n; i-- > 0;) /* the latest word counts */
        if (memcmp(v[i].pk, pk, BS_PK_LEN) == 0)
            return &v[i];
    return NULL;
}

/* Learn the `_members` change c into list (*v, *n), starting from the
 * latest word about that member, else from the store. */
static bs_err
learn(bs_admission *ad, bs_member **v, size_t *n, const bs_change *c)
{
    uint8_t pk[BS_PK_LEN];
    bs_member m, *prev, *grown;

    memset(&m, 0, sizeof m);
    if (bs_node_id_parse(c->id, pk) != BS_OK)
        return BS_OK; /* no member of anything: nothing to learn */
    if ((prev = find_member(*v, *n, pk)) != NULL)
        m = *prev;
    else if (!c->deleted) {
        bs_err known = bs_members_get(ad->txn, &ad->meta, pk, &m);
        if (known != BS_OK && known != BS_ENOTFOUND)
            return known;
    }
    if (bs_members_learn(&m, c, pk) != BS_OK)
        return BS_OK;
    if ((grown = realloc(*v, (*n + 1) * sizeof *grown)) == NULL)
        return BS_ENOMEM;
    *v = grown;
    grown[(*n)++] = m;
    return BS_OK;
}

/* Learn every `_members` change among the decoded changes of hub set v. */
static bs_err
learn_set(bs_admission *ad, bs_member **list, size_t *n, const bs_csview *v,
          const bs_change *ch)
{
    bs_err rv = BS_OK;

    for (size_t i = 0; i < v->count && rv == BS_OK; i++)
        if (ch[i].coll != NULL && strcmp(ch[i].coll, BS_SYS_MEMBERS) == 0)
            rv = learn(ad, list, n, &ch[i]);
    return rv;
}

/* The admission's own array of count changes, all zero: the entries the
 * last set filled are cleared, the rest are zero still (a branch's set in
 * summary form carries about a tenth of its seq range: clearing the whole
 * range set after set cost more than decoding what came). */
static bs_err
own_changes(bs_admission *ad, size_t count, bs_change **out)
{
    for (size_t k = 0; k < ad->nchused; k++)
        memset(&ad->ch[ad->chused[k]], 0, sizeof *ad->ch);
    ad->nchused = 0;
    if (count > ad->chcap) {
        bs_change *ch = calloc(count, sizeof *ch);
        uint32_t *used = malloc(count * sizeof *used);

        if (ch == NULL || used == NULL) {
            free(ch);
            free(used);
            return BS_ENOMEM;
        }
        free(ad->ch);
        free(ad->chused);
        ad->ch = ch;
        ad->chused = used;
        ad->chcap = count;
    }
    *out = ad->ch;
    return BS_OK;
}

/* Decode the present changes of v (A10): *out has v->count entries, an
 * omitted one zero (coll NULL), their contents in the arena.  own: the
 * entries are the admission's array (the set being admitted: valid until
 * the next one), else the arena's. */
static bs_err
decode_changes(bs_admission *ad, const bs_csview *v, int own, bs_change **out,
               bs_errbuf *err)
{
    bs_change *ch;
    bs_err rv;

    if (own) {
        if ((rv = own_changes(ad, v->count, &ch)) != BS_OK)
            return rv;
    } else {
        if ((ch = bs_arena_alloc(ad->arena, v->count * sizeof *ch)) == NULL)
            return BS_ENOMEM;
        memset(ch, 0, v->count * sizeof *ch);
    }
    for (size_t i = 0, k = 0; i < v->count; i++) {
        if (!v->present[i])
            continue;
        if (own)
            ad->chused[ad->nchused++] = (uint32_t)i;
        if (v->pre != NULL) /* decoded ahead (prefetch.h), in this order */
            ch[i] = v->pre[k++];
        else if ((rv = bs_changeset_change(v, i, ad->arena, &ch[i], err)) !=
                 BS_OK)
            return rv;
    }
    *out = ch;
    return BS_OK;
}

/* Load the members that held hub sets introduce (or revoke). */
static bs_err
load_intro(bs_admission *ad)
{
    bs_held h;
    bs_err rv;

    ad->intro_loaded = 1;
    for (rv = bs_held_next(ad->txn, BS_HELD_WAITING, 0, 0, 0, &h); rv == BS_OK;
         rv =
             bs_held_next(ad->txn, BS_HELD_WAITING, h.stream, h.first, 0, &h)) {
        const bs_stream *s = bs_streams_get(ad->streams, h.stream);
        bs_csview *v;
        bs_change *ch;

        if (s == NULL || memcmp(s->key, ad->meta.hub, BS_PK_LEN) != 0)
            continue;
        if (bs_changeset_decode(h.set.p, h.set.n, &v, NULL) != BS_OK)
            continue; /* refused when retried */
        rv = decode_changes(ad, v, 0, &ch, NULL);
        if (rv == BS_OK)
            rv = learn_set(ad, &ad->intro, &ad->nintro, v, ch);
        bs_changeset_free(v);
        if (rv != BS_OK && bs_err_local(rv))
            return rv;
    }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* 1 when member m may have written v. */
static int
allowed(const bs_member *m, const bs_csview *v)
{
    return !m->revoked || bs_member_allows(m, v->inc, v->last);
}

/* A3: BS_OK when the origin may have written v; *intro when only a held
 * hub set makes it a member. */
static bs_err
check_member(bs_admission *ad, const bs_csview *v, const char *id, int *intro,
             bs_errbuf *err)
{
    bs_member m, *w;
    bs_err rv;

    *intro = 0;
    memset(&m, 0, sizeof m);
    if (ad->dry && (w = find_member(ad->learnt, ad->nlearnt, v->origin))) {
        m = *w;
        rv = allowed(w, v) ? BS_OK : BS_ENOTFOUND;
    } else if ((rv = bs_members_get(ad->txn, &ad->meta, v->origin, &m)) ==
                   BS_ENOTFOUND &&
               bs_member_allows(&m, v->inc, v->last)) {
        rv = BS_OK;
    }
    if (rv == BS_OK || rv != BS_ENOTFOUND)
        return rv;
    if (!ad->intro_loaded && (rv = load_intro(ad)) != BS_OK)
        return rv;
    if ((w = find_member(ad->intro, ad->nintro, v->origin)) != NULL &&
        allowed(w, v)) {
        *intro = 1;
        return BS_OK;
    }
    return bs_errf(err, BS_EFORGED, "origin %s %s", id,
                   m.revoked ? "was revoked"
                             : "is not a member of this infobase");
}

/* ---- position (A5-A9) ---- */

/* The stream of v in the table, added when missing (dry: in memory). */
static bs_err
stream_of(bs_admission *ad, const bs_csview *v, bs_stream **out)
{
    bs_stream *s = bs_streams_find(ad->streams, v->origin, v->inc);

    if (s != NULL) {
        *out = s;
        return BS_OK;
    }
    if (!ad->dry)
        return bs_streams_add(ad->txn, ad->streams, v->origin, v->inc, out);
    return bs_streams_add_private(ad->streams, v->origin, v->inc, out);
}

/* How many sets of stream s are held (stored, with what a dry run would
 * have held or applied of them). */
static bs_err
held_count(bs_admission *ad, const bs_stream *s, uint64_t *n)
{
    *n = 0;
    if (s->idx != 0) {
        bs_err rv = bs_held_count(ad->txn, BS_HELD_WAITING, s->idx,
                                  BS_HELD_PER_STREAM + 1, n);
        if (rv != BS_OK)
            return rv;
    }
    *n += s->dry_held;
    *n = *n > s->dry_unheld ? *n - s->dry_unheld : 0;
    return BS_OK;
}

/* A seq range [first, last]. */
typedef struct range {
    uint64_t first, last;
} range;

static int
range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * The end of the held sets of stream s that follow its position with no
 * gap between them (s->seq when there are none): a set starting right
 * after it may wait behind them (A8); one starting further on could never
 * apply.  Counts the sets a dry run would hold too.
 */
static bs_err
held_chain(bs_admission *ad, const bs_stream *s, uint64_t *end)
{
    range r[2 * BS_HELD_PER_STREAM + 2];
    size_t n = 0;
    bs_held h;
    bs_err rv = BS_ENOTFOUND;

    if (s->idx != 0)
        for (rv = bs_held_next(ad->txn, BS_HELD_WAITING, s->idx, 0, 1, &h);
             rv == BS_OK && n < BS_HELD_PER_STREAM + 1;
             rv = bs_held_next(ad->txn, BS_HELD_WAITING, s->idx, h.first, 1,
                               &h)) {
            uint64_t first, created;
            if (bs_changeset_stored_info(h.set, &first, &r[n].last, &created) ==
                BS_OK) {
                r[n].first = first;
                n++;
            }
        }
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    for (size_t i = 0; i < ad->ndheld && n < sizeof r / sizeof r[0]; i++)
        if (memcmp(ad->dheld[i].key, s->key, BS_STREAM_KEY_LEN) == 0)
            r[n++] = (range){ad->dheld[i].first, ad->dheld[i].last};
    qsort(r, n, sizeof r[0], range_cmp);
    *end = s->seq;
    for (size_t i = 0; i < n && r[i].first <= *end + 1; i++)
        if (r[i].last > *end)
            *end = r[i].last;
    return BS_OK;
}

/* 1 when the held table keeps v (of stream s) already. */
static int
is_held(bs_admission *ad, const bs_stream *s, const bs_csview *v)
{
    bs_held h;

    return s->idx != 0 &&
           bs_held_get(ad->txn, BS_HELD_WAITING, s->idx, v->first, &h) == BS_OK;
}

/* A6: a replay, or the proof of a fork when other signed bytes are stored
 * for the same position. */
static bs_err
replay(bs_admission *ad, const bs_stream *s, const bs_csview *v, bs_admit *out)
{
    uint8_t h2[BS_HASH_LEN];
    bs_slice held;
    bs_err rv;

    out->verdict = BS_ADMIT_DUPLICATE;
    if (s->idx == 0)
        return BS_OK;
    rv = bs_setlog_get(ad->txn, s->idx, v->first, &held);
    if (rv == BS_ENOTFOUND) {
        int fork = 0; /* compacted here: its stub judges (compact.h) */
        rv = bs_compact_fork(ad->txn, s->idx, v->first, v->header_hash, &fork);
        if (rv == BS_OK && fork) {
            out->verdict = BS_ADMIT_QUARANTINE;
            out->why = "two different change sets";
        }
        return rv;
    }
    if (rv != BS_OK ||
        (held.n == v->raw.n && memcmp(held.p, v->raw.p, held.n) == 0))
        return BS_OK;
    /* Same position, other bytes: the same set if only omissions, or the
     * form (2.10), differ, so compare the signed headers by their hash. */
    if (bs_changeset_stored_header_hash(held, h2) != BS_OK ||
        memcmp(h2, v->header_hash, BS_HASH_LEN) != 0) {
        out->verdict = BS_ADMIT_QUARANTINE;
        out->why = "two different change sets";
    }
    return BS_OK;
}

static bs_err
hold(bs_admission *ad, bs_stream *s, const char *id, bs_hold_reason why,
     bs_admit *out, bs_errbuf *err)
{
    uint64_t n;
    bs_err rv;

    if ((rv = held_count(ad, s, &n)) != BS_OK)
        return rv;
    if (n >= BS_HELD_PER_STREAM)
        return bs_errf(err, BS_EGAP,
                       "%llu change sets of origin %s are held already: "
                       "refused until they apply",
                       (unsigned long long)n, id);
    out->verdict = BS_ADMIT_HOLD;
    out->hold = why;
    return BS_OK;
}

static bs_err governing(bs_admission *ad, const bs_change *c, bs_collection *r,
                        bs_rule_version *ver);

/* This node's member name, for judging its scope (A7o). */
static void
scope_name(bs_admission *ad, char name[BS_NODE_NAME_MAX + 1])
{
    bs_access_name(ad->txn, &ad->meta, ad->meta.pk, name);
    if (ad->dry) { /* a dry run: named by a hub set earlier in the file */
        const bs_member *lm = find_member(ad->learnt, ad->nlearnt, ad->meta.pk);

        if (lm != NULL)
            snprintf(name, BS_NODE_NAME_MAX + 1, "%s", lm->name);
    }
}

/* A7o for a set in summary form (protocol.md 2.10): every bucket it does
 * not carry lies outside this node's scope. */
static bs_err
check_buckets(bs_admission *ad, const bs_csview *v, const char *id,
              bs_errbuf *err)
{
    int hub = memcmp(ad->meta.pk, ad->meta.hub, BS_PK_LEN) == 0 ||
              bs_members_is_region(ad->txn, &ad->meta, ad->meta.pk);
    char name[BS_NODE_NAME_MAX + 1];
    bs_collection rules;

    scope_name(ad, name);
    for (size_t b = 0; b < v->nbuckets; b++) {
        bs_rule_version ver;
        bs_change probe;
        bs_err rv;

        if (v->bucket_kept[b])
            continue;
        memset(&probe, 0, sizeof probe);
        probe.coll = v->bucket_coll[b];
        probe.hlc = UINT64_MAX; /* the rules now */
        if ((rv = governing(ad, &probe, &rules, &ver)) != BS_OK)
            return rv;
        if (bs_scope_entitled(hub, name, &rules, v->bucket_coll[b],
                              v->bucket_owner[b], v->bucket_before[b]))
            return bs_errf(err, BS_EPERM,
                           "not permitted: change set %llu-%llu of origin %s "
                           "leaves out %u changes (%s, owner \"%s\", before "
                           "\"%s\"), which this node is entitled to: refused "
                           "until they arrive",
                           (unsigned long long)v->first,
                           (unsigned long long)v->last, id, v->bucket_count[b],
                           v->bucket_coll[b], v->bucket_owner[b],
                           v->bucket_before[b]);
    }
    return BS_OK;
}

/*
 * A7o: every change v leaves out lies outside this node's scope (scope.h):
 * the hub and a regional hub are entitled to everything (members.h); a
 * branch to every change outside an
 * owner-scoped collection (by the rules it holds now) and to those whose
 * signed route names it, as the owner after the change or before it.  A set
 * without routes verifies no omission.
 */
static bs_err
check_omitted(bs_admission *ad, const bs_csview *v, const char *id,
              bs_errbuf *err)
{
    int hub = memcmp(ad->meta.pk, ad->meta.hub, BS_PK_LEN) == 0 ||
              bs_members_is_region(ad->txn, &ad->meta, ad->meta.pk);
    char name[BS_NODE_NAME_MAX + 1];
    bs_collection rules;
    size_t i;

    for (i = 0; i < v->count && v->present[i]; i++)
        ;
    if (i == v->count)
        return BS_OK; /* nothing left out */
    if (v->summary_form)
        return check_buckets(ad, v, id, err);
    if (v->route_coll == NULL)
        return bs_errf(err, BS_EPERM,
                       "not permitted: change set %llu-%llu of origin %s "
                       "leaves out change %llu and carries no routes to "
                       "verify it (a relay filtered a version-1 set): "
                       "refused until it arrives whole",
                       (unsigned long long)v->first,
                       (unsigned long long)v->last, id,
                       (unsigned long long)(v->first + i));
    scope_name(ad, name);
    rules.name[0] = '\0';
    for (; i < v->count; i++) {
        bs_rule_version ver;
        bs_change probe;
        bs_err rv;

        if (v->present[i])
            continue;
        memset(&probe, 0, sizeof probe);
        probe.coll = v->route_coll[i];
        probe.hlc = UINT64_MAX; /* the rules now (looked up once per run of
                                   one collection) */
        if (strcmp(rules.name, probe.coll) != 0) {
            if ((rv = governing(ad, &probe, &rules, &ver)) != BS_OK)
                return rv;
            snprintf(rules.name, sizeof rules.name, "%s", probe.coll);
        }
        if (bs_scope_entitled(hub, name, &rules, v->route_coll[i],
                              v->route_owner[i], v->route_before[i]))
            return bs_errf(err, BS_EPERM,
                           "not permitted: change set %llu-%llu of origin %s "
                           "leaves out change %llu (%s, owner \"%s\", before "
                           "\"%s\"), which this node is entitled to: refused "
                           "until it arrives whole",
                           (unsigned long long)v->first,
                           (unsigned long long)v->last, id,
                           (unsigned long long)(v->first + i), v->route_coll[i],
                           v->route_owner[i], v->route_before[i]);
    }
    return BS_OK;
}

/*
 * A7s (bootstrap): a set at or below the seed point may leave out any
 * change of a user collection, which the hub's snapshots summarise; never
 * one of a system collection (members and rules arrive only as signed
 * changes), and nothing from a set without routes (nothing tells what it
 * left out).
 */
static bs_err
check_seed_omitted(const bs_csview *v, const char *id, bs_errbuf *err)
{
    for (size_t i = 0; i < v->count; i++) {
        if (v->present[i])
            continue;
        if (v->route_coll == NULL || v->route_coll[i][0] == '_')
            return bs_errf(
                err, BS_EPERM,
                "not permitted: seeding change set %llu-%llu of "
                "origin %s leaves out change %llu, %s: refused "
                "until it arrives whole",
                (unsigned long long)v->first, (unsigned long long)v->last, id,
                (unsigned long long)(v->first + i),
                v->route_coll == NULL ? "and carries no routes to verify it"
                                      : "of a system collection");
    }
    return BS_OK;
}

/* 1 when v lies at or below the seed point of its stream s. */
static int
seeding(const bs_admission *ad, const bs_stream *s, const bs_csview *v)
{
    return ad->seed != NULL &&
           v->last <= bs_vv_get(ad->seed, ad->nseed, s->key);
}

/* A5r: on a released stream, a set that contradicts this node's history
 * from the release's seq on is of the dropped version: a no-op, not a
 * new quarantine. */
static void
settled(int settle, bs_admit *out)
{
    if (out->verdict == BS_ADMIT_QUARANTINE && settle)
        out->verdict = BS_ADMIT_DUPLICATE;
}

/* A5-A9 against stream s (A7o between A7 and A8). */
static bs_err
position(bs_admission *ad, bs_stream *s, const bs_csview *v, const char *id,
         bs_admit *out, bs_errbuf *err)
{
    int drop, settle, seed;
    uint64_t n;
    bs_err rv;

    if (s->flags & BS_STREAM_QUARANTINED) {
        out->verdict = BS_ADMIT_QUARANTINED;
        return BS_OK;
    }
    /* A5r: a released stream drops a set covering the release's seq
     * other than the kept one (quarantine.h). */
    if ((rv = bs_quarantine_judge(ad->txn, s, v, &drop, &settle)) != BS_OK)
        return rv;
    if (drop) {
        out->verdict = BS_ADMIT_DUPLICATE;
        return BS_OK;
    }
    if (v->last <= s->seq) {
        if ((rv = replay(ad, s, v, out)) == BS_OK)
            settled(settle, out);
        return rv;
    }
    if (v->first <= s->seq)
        return bs_errf(err, BS_EMALFORMED,
                       "change set %llu-%llu of origin %s overlaps seq %llu "
                       "already held",
                       (unsigned long long)v->first,
                       (unsigned long long)v->last, id,
                       (unsigned long long)s->seq);
    seed = seeding(ad, s, v);
    rv = seed ? check_seed_omitted(v, id, err) /* A7s */
              : check_omitted(ad, v, id, err); /* A7o */
    if (rv != BS_OK)
        return rv;
    if (seed && v->first > s->seq + 1) { /* A8s: the position jumps */
        out->verdict = BS_ADMIT_APPLY;
        return BS_OK;
    }
    if (v->first > s->seq + 1) {
        if ((rv = held_chain(ad, s, &n)) != BS_OK)
            return rv;
        /* right after the held chain, or inside it (sent again while
         * held: it waits as the first copy does) */
        if (v->first <= n + 1)
            return hold(ad, s, id, BS_HOLD_BEHIND, out, err);
        return bs_errf(err, BS_EGAP,
                       "change set would leave a gap: holding seq %llu of "
                       "origin %s, set starts at %llu",
                       (unsigned long long)s->seq, id,
                       (unsigned long long)v->first);
    }
    /* A node joining in this exchange re-seals its own sets first (their
     * chain heads change): only the real apply can judge their links. */
    if (v->first > 1 && memcmp(v->prev_hash, s->last_hash, BS_HASH_LEN) != 0 &&
        !(ad->joining && memcmp(v->origin, ad->meta.pk, BS_PK_LEN) == 0)) {
        out->verdict = BS_ADMIT_QUARANTINE;
        out->why = "history fork";
        settled(settle, out);
        return BS_OK;
    }
    out->verdict = BS_ADMIT_APPLY;
    return BS_OK;
}

/* ---- the changes (A10-A12) ---- */

/* A10h: the hub positions v's origin had seen, held here too. */
static int
saw_more_of_hub(bs_admission *ad, const bs_csview *v)
{
    for (size_t i = 0; i < v->nseen; i++) {
        const bs_pos *p = &v->seen[i];
        bs_stream *s;

        if (memcmp(p->origin, ad->meta.hub, BS_PK_LEN) != 0 || p->seq == 0)
            continue;
        s = bs_streams_find(ad->streams, p->origin, p->inc);
        if (s == NULL || s->seq < p->seq)
            return 1;
    }
    return 0;
}

/* Whether this node holds everything v's origin had seen: only then does
 * it judge v's changes on all the origin knew. */
static int
knows_all_seen(bs_admission *ad, const bs_csview *v)
{
    for (size_t i = 0; i < v->nseen; i++) {
        const bs_pos *p = &v->seen[i];
        bs_stream *s;

        if (p->seq == 0)
            continue;
        s = bs_streams_find(ad->streams, p->origin, p->inc);
        if (s == NULL || s->seq < p->seq)
            return 0;
    }
    return 1;
}

/* Whether a dry run learnt rules of c's collection from a hub set earlier
 * in the file: the owners noted before them followed the older rules, so
 * only the stored result (pass 2) is exact. */
static int
learnt_rules_of(const bs_admission *ad, const bs_change *c)
{
    for (size_t i = 0; i < ad->ndrules; i++)
        if (strcmp(ad->drules[i].rules.name, c->coll) == 0)
            return 1;
    return 0;
}

/* Whether v's origin had seen position (key, seq) in its signed vector. */
static int
saw_pos(const bs_csview *v, const uint8_t *key, uint64_t seq)
{
    for (size_t i = 0; i < v->nseen; i++)
        if (memcmp(v->seen[i].origin, key, BS_PK_LEN) == 0 &&
            memcmp(v->seen[i].inc, key + BS_PK_LEN, BS_INC_LEN) == 0)
            return v->seen[i].seq >= seq;
    return memcmp(v->origin, key, BS_PK_LEN) == 0 &&
           memcmp(v->inc, key + BS_PK_LEN, BS_INC_LEN) == 0 &&
           seq < v->first; /* its own earlier change */
}

/* Whether v's origin had seen rule version ver (in its signed vector). */
static int
saw_version(const bs_admission *ad, const bs_csview *v,
            const bs_rule_version *ver)
{
    if (ver->seq == 0)
        return 1; /* the defaults: known to everyone */
    for (size_t i = 0; i < v->nseen; i++)
        if (memcmp(v->seen[i].origin, ad->meta.hub, BS_PK_LEN) == 0 &&
            memcmp(v->seen[i].inc, ver->inc, BS_INC_LEN) == 0)
            return v->seen[i].seq >= ver->seq;
    return 0;
}

/* The rules governing c: the store's version, or one a hub set earlier in
 * a dry run brings when that is later and still before c. */
static bs_err
cached_rules(bs_admission *ad, const char *coll, struct bs_rule_cache **out)
{
    struct bs_rule_cache *rc;
    struct bs_dry_rule d;
    bs_err rv;

    for (size_t i = 0; i < ad->nrcache; i++)
        if (strcmp(ad->rcache[i].name, coll) == 0) {
            *out = &ad->rcache[i];
            return BS_OK;
        }
    rc = realloc(ad->rcache, (ad->nrcache + 1) * sizeof *rc);
    if (rc == NULL)
        return BS_ENOMEM;
    ad->rcache = rc;
    rc = &rc[ad->nrcache++];
    memset(rc, 0, sizeof *rc);
    snprintf(rc->name, sizeof rc->name, "%s", coll);
    memset(&d, 0, sizeof d);
    while ((rv = bs_rules_next(ad->txn, coll, &d.ver, &d.rules)) == BS_OK) {
        struct bs_dry_rule *nv = realloc(rc->v, (rc->n + 1) * sizeof *nv);

        if (nv == NULL)
            return BS_ENOMEM;
        rc->v = nv;
        rc->v[rc->n++] = d;
    }
    *out = rc;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
governing(bs_admission *ad, const bs_change *c, bs_collection *r,
          bs_rule_version *ver)
{
    struct bs_rule_cache *rc;
    bs_err rv = cached_rules(ad, c->coll, &rc);
    size_t k = rc != NULL ? rc->n : 0;

    while (k > 0 && rc->v[k - 1].ver.hlc >= c->hlc)
        k--;
    if (k > 0) {
        *r = rc->v[k - 1].rules;
        *ver = rc->v[k - 1].ver;
    } else { /* the defaults */
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", c->coll);
        memset(ver, 0, sizeof *ver);
    }
    for (size_t i = 0; rv == BS_OK && i < ad->ndrules; i++) {
        const struct bs_dry_rule *d = &ad->drules[i];

        if (d->ver.hlc < c->hlc && d->ver.hlc >= ver->hlc &&
            strcmp(d->rules.name, c->coll) == 0) {
            *r = d->rules;
            *ver = d->ver;
        }
    }
    return rv;
}

/* A dry run: remember that an earlier set changes the owner of the record
 * whose hash is h; touched() asks. */
static bs_err
touch(bs_admission *ad, uint64_t h)
{
    size_t i;

    if (2 * (ad->ntouched + 1) > ad->ntouchslot) {
        size_t n = ad->ntouchslot ? ad->ntouchslot * 2 : 1024;
        uint64_t *v = calloc(n, sizeof *v);

        if (v == NULL)
            return BS_ENOMEM;
        for (size_t k = 0; k < ad->ntouchslot; k++)
            if (ad->touched[k] != 0) {
                for (i = ad->touched[k] & (n - 1); v[i] != 0;
                     i = (i + 1) & (n - 1))
                    ;
                v[i] = ad->touched[k];
            }
        free(ad->touched);
        ad->touched = v;
        ad->ntouchslot = n;
    }
    for (i = h & (ad->ntouchslot - 1);
         ad->touched[i] != 0 && ad->touched[i] != h;
         i = (i + 1) & (ad->ntouchslot - 1))
        ;
    if (ad->touched[i] == 0) {
        ad->touched[i] = h;
        ad->ntouched++;
    }
    return BS_OK;
}

static int
touched(const bs_admission *ad, const bs_change *c)
{
    uint64_t h;

    if (ad->ntouched == 0)
        return 0;
    h = bs_access_record_hash(c->coll, c->id);
    for (size_t i = h & (ad->ntouchslot - 1); ad->touched[i] != 0;
         i = (i + 1) & (ad->ntouchslot - 1))
        if (ad->touched[i] == h)
            return 1;
    return 0;
}

/* Keep the owner an admitted change leaves its record with, for the
 * changes judged after it before it is stored (as apply.c notes it: by
 * the owner field of the collection's rules now). */
static bs_err
note_pending(bs_admission *ad, const bs_change *c, const uint8_t *skey)
{
    char owner[BS_NODE_NAME_MAX + 2];
    bs_collection now;
    bs_rule_version ver;
    bs_change probe;
    int sets = c->deleted;
    bs_err rv;

    /* the rules now: stored, or brought by a hub set earlier in a dry run */
    memset(&probe, 0, sizeof probe);
    probe.coll = c->coll;
    probe.hlc = UINT64_MAX;
    if ((rv = governing(ad, &probe, &now, &ver)) != BS_OK)
        return rv;
    if (now.owner_field[0] == '\0')
        return BS_OK;
    for (size_t i = 0; i < c->nfields && !sets; i++)
        sets = strcmp(c->fields[i].name, now.owner_field) == 0;
    if (!sets)
        return BS_OK;
    if (ad->dry)
        return touch(ad, bs_access_record_hash(c->coll, c->id));
    bs_access_owner_after(c, now.owner_field, "", owner, sizeof owner);
    return bs_owner_notes_add(&ad->notes, c->coll, c->id, owner, c->hlc, c->seq,
                              skey);
}

/* Whether every rule version of c's collection (and none learnt in a dry
 * run) lets anyone write and names no owner field: then no change of it
 * is forbidden, and none gives an owner. */
static bs_err
open_collection(bs_admission *ad, const char *coll, int *open)
{
    bs_rule_version v = {0, 0, {0}};
    bs_collection r;
    struct bs_open_coll *e;
    bs_err rv = BS_OK;

    for (size_t i = 0; i < ad->nopen; i++)
        if (strcmp(ad->open[i].name, coll) == 0) {
            *open = ad->open[i].open;
            return BS_OK;
        }
    *open = 1;
    for (size_t i = 0; i < ad->ndrules && *open; i++)
        if (strcmp(ad->drules[i].rules.name, coll) == 0)
            *open = 0;
    while (*open && (rv = bs_rules_next(ad->txn, coll, &v, &r)) == BS_OK)
        *open = r.writers == BS_WRITERS_ALL && r.owner_field[0] == '\0';
    if (*open && rv != BS_ENOTFOUND)
        return rv;
    e = &ad->open[ad->nopen < 8 ? ad->nopen++ : 7];
    snprintf(e->name, sizeof e->name, "%s", coll);
    e->open = *open;
    return BS_OK;
}

/* A11 for the user collections: judge every change of a member's set. */
static bs_err
check_access(bs_admission *ad, const bs_csview *v, const char *id,
             bs_admit *out, bs_errbuf *err)
{
    bs_order o = {0, bs_streams_key, ad->streams};
    char name[BS_NODE_NAME_MAX + 1];
    bs_judgment j;
    bs_err rv = BS_OK;

    /* The sets before this one are stored (or, in a dry run, touched()
     * records wait for pass 2): only this set's changes are pending. */
    bs_owner_notes_clear(&ad->notes);
    bs_access_name(ad->txn, &ad->meta, v->origin, name);
    if (name[0] == '\0') { /* a dry run: introduced earlier in the file */
        const bs_member *lm = find_member(ad->learnt, ad->nlearnt, v->origin);

        if (lm != NULL)
            snprintf(name, sizeof name, "%s", lm->name);
    }
    for (size_t i = 0; i < v->count && rv == BS_OK; i++) {
        const bs_change *c = &out->changes[i];
        bs_version cv = {c->hlc, c->seq, out->stream->idx, c->prio};
        bs_collection rules, latest;
        bs_rule_version ver, lver;
        bs_change probe = {0};
        int open;

        if (c->coll == NULL || c->coll[0] == '_')
            continue;
        if ((rv = open_collection(ad, c->coll, &open)) != BS_OK)
            break;
        if (open)
            continue;
        probe.coll = c->coll;
        probe.hlc = UINT64_MAX;
        if ((rv = governing(ad, c, &rules, &ver)) != BS_OK ||
            (rv = bs_rules_seen(ad->txn, c->coll, ad->meta.hub, v->seen,
                                v->nseen, &rules, &ver)) != BS_OK ||
            (rv = governing(ad, &probe, &latest, &lver)) != BS_OK ||
            (rv = bs_access_judge(ad->txn, &ad->meta, out->stream->key, name, c,
                                  &cv, &o, &rules, &ver, &latest, &lver, NULL,
                                  ad->dry ? NULL : &ad->notes, &j)) != BS_OK)
            break;
        if (j.allowed) {
            rv = note_pending(ad, c, out->stream->key);
            continue;
        }
        /* It could have known: it had the rule, and the change that gave
         * the record its owner; and this node knows all it knew (else a
         * change it saw and this node lacks may yet allow it). */
        if (saw_version(ad, v, &j.ver) && saw_version(ad, v, &j.field_ver) &&
            (!j.by_change || saw_pos(v, j.by_key, j.by_seq)) && !j.unsure &&
            knows_all_seen(ad, v) && !learnt_rules_of(ad, c) &&
            !touched(ad, c)) {
            rv = bs_errf(err, BS_EPERM,
                         "not permitted: %s (origin %s had the rule)", j.why,
                         id);
            break;
        }
        if (out->skip == NULL) {
            if ((out->skip = bs_arena_alloc(ad->arena, v->count)) == NULL ||
                (out->by_rule_why = bs_arena_strndup(ad->arena, j.why,
                                                     strlen(j.why))) == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            memset(out->skip, 0, v->count);
        }
        out->skip[i] = 1;
        out->by_rule++;
    }
    return rv;
}

static bs_err
check_changes(bs_admission *ad, const bs_csview *v, const char *id,
              bs_admit *out, bs_errbuf *err)
{
    int is_hub = memcmp(v->origin, ad->meta.hub, BS_PK_LEN) == 0;
    bs_errbuf e2 = {{0}};
    bs_err rv;

    if ((rv = decode_changes(ad, v, 1, &out->changes, &e2)) != BS_OK)
        return bs_errf(err, rv, "change set %llu-%llu of origin %s: %s",
                       (unsigned long long)v->first,
                       (unsigned long long)v->last, id, bs_errmsg(&e2, rv));
    for (size_t i = 0; i < v->count; i++) {
        const bs_change *c = &out->changes[i];
        if (c->coll == NULL)
            continue;
        if (strcmp(c->coll, BS_SYS_COLLECTIONS) == 0)
            forget_rules(ad); /* rules change: judge again */
        if (c->coll[0] == '_' && !is_hub)
            return bs_errf(err, BS_EPERM,
                           "not permitted: only the hub writes %s (origin %s "
                           "wrote %s/%s)",
                           c->coll, id, c->coll, c->id);
        if (c->hlc > out->max_hlc)
            out->max_hlc = c->hlc;
    }
    if (is_hub)
        return BS_OK;
    if (saw_more_of_hub(ad, v)) /* A10h */
        return hold(ad, out->stream, id, BS_HOLD_HUB, out, err);
    return check_access(ad, v, id, out, err);
}

/* A dry run: the rule versions of hub set v's `_collections` changes,
 * each over the rules in effect before it. */
static bs_err
learn_rules(bs_admission *ad, const bs_csview *v, const bs_change *ch)
{
    for (size_t i = 0; i < v->count; i++) {
        const bs_change *c = &ch[i];
        struct bs_dry_rule *d;
        bs_collection now;
        bs_rule_version ver;
        bs_change probe;
        bs_err rv;

        if (c->coll == NULL || strcmp(c->coll, BS_SYS_COLLECTIONS) != 0)
            continue;
        memset(&probe, 0, sizeof probe);
        probe.coll = c->id;
        probe.hlc = UINT64_MAX;
        if ((rv = governing(ad, &probe, &now, &ver)) != BS_OK)
            return rv;
        snprintf(now.name, sizeof now.name, "%s", c->id);
        now.declared = 1;
        for (size_t k = 0; k < c->nfields; k++) {
            bs_record one = {0};

            one.fields = (bs_field *)&c->fields[k];
            one.nfields = 1;
            /* One field at a time over what holds: a field this change
             * does not write keeps its value. */
            {
                bs_collection f;
                memset(&f, 0, sizeof f);
                bs_collection_from_record(&f, &one);
                if (strcmp(c->fields[k].name, "policy") == 0)
                    now.policy = f.policy;
                else if (strcmp(c->fields[k].name, "writers") == 0)
                    now.writers = f.writers;
                else if (strcmp(c->fields[k].name, "scope") == 0)
                    now.scope = f.scope;
                else if (strcmp(c->fields[k].name, "owner_field") == 0)
                    snprintf(now.owner_field, sizeof now.owner_field, "%s",
                             f.owner_field);
            }
        }
        if (c->deleted) {
            memset(&now, 0, sizeof now);
            snprintf(now.name, sizeof now.name, "%s", c->id);
            now.declared = 1;
        }
        d = realloc(ad->drules, (ad->ndrules + 1) * sizeof *d);
        if (d == NULL)
            return BS_ENOMEM;
        ad->drules = d;
        d[ad->ndrules].rules = now;
        d[ad->ndrules].ver.hlc = c->hlc;
        d[ad->ndrules].ver.seq = c->seq;
        memcpy(d[ad->ndrules].ver.inc, v->inc, BS_INC_LEN);
        ad->ndrules++;
    }
    return BS_OK;
}

/* ---- the whole decision ---- */

/* What a dry run remembers of a set it let through. */
static bs_err
dry_track(bs_admission *ad, const bs_csview *v, bs_admit *out)
{
    bs_stream *s = out->stream;
    bs_err rv;

    /* As the apply will: advance, or hold (replacing a held copy), and
     * forget a held copy of what it applies. */
    if (out->verdict == BS_ADMIT_APPLY) {
        s->seq = v->last;
        memcpy(s->last_hash, v->header_hash, BS_HASH_LEN);
        s->dry_unheld += is_held(ad, s, v);
    } else if (out->verdict == BS_ADMIT_HOLD) {
        struct bs_dry_held *d;
        s->dry_held += !is_held(ad, s, v);
        d = realloc(ad->dheld, (ad->ndheld + 1) * sizeof *d);
        if (d == NULL)
            return BS_ENOMEM;
        ad->dheld = d;
        memcpy(d[ad->ndheld].key, s->key, BS_STREAM_KEY_LEN);
        d[ad->ndheld].first = v->first;
        d[ad->ndheld++].last = v->last;
    } else if (out->verdict == BS_ADMIT_QUARANTINE) {
        s->flags |= BS_STREAM_QUARANTINED; /* its later sets are no-ops */
    }
    /* The hub's membership changes count for the sets after it: as the
     * store's will when this set applies, as held introductions when it
     * waits. */
    if (memcmp(v->origin, ad->meta.hub, BS_PK_LEN) != 0 ||
        (out->verdict != BS_ADMIT_APPLY && out->verdict != BS_ADMIT_HOLD))
        return BS_OK;
    if (out->changes == NULL &&
        decode_changes(ad, v, 0, &out->changes, NULL) != BS_OK)
        return BS_OK; /* it is refused when it applies */
    if (out->verdict == BS_ADMIT_APPLY) {
        /* the owners its changes give, for the sets after it */
        for (size_t i = 0; i < v->count; i++)
            if (out->changes[i].coll != NULL &&
                out->changes[i].coll[0] != '_' &&
                (rv = note_pending(ad, &out->changes[i], out->stream->key)) !=
                    BS_OK)
                return rv;
        return (rv = learn_rules(ad, v, out->changes)) != BS_OK
                   ? rv
                   : learn_set(ad, &ad->learnt, &ad->nlearnt, v, out->changes);
    }
    if (!ad->intro_loaded && (rv = load_intro(ad)) != BS_OK)
        return rv; /* the stored ones first: they are older */
    return learn_set(ad, &ad->intro, &ad->nintro, v, out->changes);
}

bs_err
bs_admit_set(bs_admission *ad, const bs_csview *v, bs_admit *out,
             bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];
    int intro;
    bs_err rv;

    memset(out, 0, sizeof *out);
    ad->snapname_ok = 0; /* it may change who this node is (members) */
    bs_node_id_format(v->origin, id);
    if (!ad->meta.joined) /* A1 */
        return bs_errf(err, BS_EINFOBASE,
                       "this branch has not joined an infobase yet");
    if (memcmp(v->infobase, ad->meta.infobase, BS_INFOBASE_LEN) != 0) /* A2 */
        return bs_errf(err, BS_EINFOBASE,
                       "change set from %s belongs to another infobase", id);
    if ((rv = check_member(ad, v, id, &intro, err)) != BS_OK) /* A3 */
        return rv;
    if (!v->verified && bs_changeset_verify(v, v->origin) != BS_OK) /* A4 */
        return bs_errf(err, BS_EBADSIG,
                       "signature of origin %s does not verify", id);
    if ((rv = stream_of(ad, v, &out->stream)) != BS_OK)
        return rv;
    if (intro)
        rv = hold(ad, out->stream, id, BS_HOLD_INTRODUCTION, out, err);
    else
        rv = position(ad, out->stream, v, id, out, err); /* A5-A9 */
    if (rv == BS_OK && out->verdict == BS_ADMIT_APPLY &&
        (rv = check_changes(ad, v, id, out, err)) == BS_OK && /* A10-A11 */
        out->verdict == BS_ADMIT_APPLY &&
        BS_HLC_MS(out->max_hlc) > ad->now_ms + ad->max_skew_ms)
        rv = hold(ad, out->stream, id, BS_HOLD_CLOCK, out, err); /* A12 */
    if (rv == BS_OK && ad->dry)
        rv = dry_track(ad, v, out);
    return rv;
}

/* ---- record snapshots (move-in) ---- */

/* N9's carrier: the hub, or (revision 2026-12, regional hubs) a regional
 * hub relaying the hub's snapshots to this branch (movein.h); the
 * signature stays the hub's either way (N10). */
static int
snap_carrier(bs_admission *ad, const uint8_t *carrier)
{
    return memcmp(carrier, ad->meta.hub, BS_PK_LEN) == 0 ||
           (memcmp(ad->meta.pk, ad->meta.hub, BS_PK_LEN) != 0 &&
            !bs_members_is_region(ad->txn, &ad->meta, ad->meta.pk) &&
            bs_members_is_region(ad->txn, &ad->meta, carrier));
}

bs_err
bs_admit_snapshot(bs_admission *ad, const bs_snap *s, const uint8_t *carrier,
                  bs_errbuf *err)
{
    char owner[BS_NODE_NAME_MAX + 1] = "";
    char id[BS_NODE_ID_LEN + 1];
    bs_rule_version ver;
    bs_collection rules;
    const bs_value *ov;
    bs_change probe;
    bs_err rv;

    if (!ad->meta.joined) /* N7 */
        return bs_errf(err, BS_EINFOBASE,
                       "this branch has not joined an infobase yet");
    if (memcmp(s->infobase, ad->meta.infobase, BS_INFOBASE_LEN) != 0) /* N8 */
        return bs_errf(err, BS_EINFOBASE,
                       "record snapshot of %s/%s belongs to another infobase",
                       s->coll, s->id);
    if (s->seed && memcmp(s->hub, carrier, BS_PK_LEN) == 0 &&
        memcmp(carrier, ad->meta.hub, BS_PK_LEN) != 0 &&
        snap_carrier(ad, carrier)) { /* N9s: a regional hub's seed ends */
        if (!s->batched && bs_snap_verify(s, carrier) != BS_OK) /* N10 */
            return bs_errf(err, BS_EBADSIG,
                           "the end of a seed: the regional hub's signature "
                           "does not verify");
        return BS_OK;
    }
    if (memcmp(s->hub, ad->meta.hub, BS_PK_LEN) != 0 ||
        !snap_carrier(ad, carrier)) {   /* N9 */
        bs_node_id_format(carrier, id); /* only here: once per snapshot
                                           costs 5 % of a seed's import */
        return bs_errf(err, BS_EFORGED,
                       "record snapshot of %s/%s from %s: only this "
                       "infobase's hub sends record snapshots",
                       s->coll, s->id, id);
    }
    if (!s->batched && bs_snap_verify(s, ad->meta.hub) != BS_OK) /* N10 */
        return bs_errf(err, BS_EBADSIG,
                       "record snapshot of %s/%s: the hub's signature does "
                       "not verify",
                       s->coll, s->id);
    if (memcmp(ad->meta.pk, ad->meta.hub, BS_PK_LEN) == 0) /* N11 */
        return bs_errf(err, BS_EPERM,
                       "not permitted: the hub takes no record snapshots");
    if (s->nfields == 0) /* no data: an end marker or a tombstone */
        return BS_OK;
    memset(&probe, 0, sizeof probe); /* N12: the rules it holds now */
    probe.coll = s->coll;
    probe.hlc = UINT64_MAX;
    if ((rv = governing(ad, &probe, &rules, &ver)) != BS_OK)
        return rv;
    if (!ad->snapname_ok) {
        scope_name(ad, ad->snapname);
        ad->snap_region = bs_members_is_region(ad->txn, &ad->meta, ad->meta.pk);
        ad->snapname_ok = 1;
    }
    if (rules.owner_field[0] != '\0' &&
        (ov = bs_snap_field(s, rules.owner_field)) != NULL &&
        ov->type == BS_VTEXT && ov->len <= BS_NODE_NAME_MAX) {
        memcpy(owner, ov->s, ov->len);
        owner[ov->len] = '\0';
    }
    if (!bs_scope_entitled(0, ad->snapname, &rules, s->coll, owner, NULL) &&
        !ad->snap_region)
        return bs_errf(err, BS_EPERM,
                       "not permitted: record snapshot of %s/%s (owner "
                       "\"%s\") is outside this node's scope",
                       s->coll, s->id, owner);
    return BS_OK;
}

/* N7-N11 for a batch (docs/protocol.md 2.11): its header in place of a
 * snapshot's body; then every body against its hash. */
bs_err
bs_admit_snapbatch(bs_admission *ad, const bs_snapbatch *b,
                   const uint8_t *carrier, bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];

    bs_node_id_format(carrier, id);
    if (!ad->meta.joined) /* N7 */
        return bs_errf(err, BS_EINFOBASE,
                       "this branch has not joined an infobase yet");
    if (memcmp(b->infobase, ad->meta.infobase, BS_INFOBASE_LEN) != 0) /* N8 */
        return bs_errf(err, BS_EINFOBASE,
                       "batch of record snapshots belongs to another "
                       "infobase");
    if (memcmp(b->hub, ad->meta.hub, BS_PK_LEN) != 0 ||
        memcmp(carrier, ad->meta.hub, BS_PK_LEN) != 0) /* N9 */
        return bs_errf(err, BS_EFORGED,
                       "batch of record snapshots from %s: only this "
                       "infobase's hub sends record snapshots",
                       id);
    if (bs_snapbatch_verify(b, ad->meta.hub) != BS_OK) /* N10 */
        return bs_errf(err, BS_EBADSIG,
                       "batch of record snapshots: the hub's signature does "
                       "not verify");
    if (memcmp(ad->meta.pk, ad->meta.hub, BS_PK_LEN) == 0) /* N11 */
        return bs_errf(err, BS_EPERM,
                       "not permitted: the hub takes no record snapshots");
    for (size_t i = 0; b->version == 1 && i < b->n; i++)
        if (!bs_snapbatch_body_ok(b, i)) /* N10 */
            return bs_errf(err, BS_EBADSIG,
                           "batch of record snapshots: snapshot %zu of %zu is "
                           "not the one the hub signed (altered, replaced or "
                           "reordered)",
                           i + 1, b->n);
    if (b->version != 1 && !bs_snapbatch_bodies_ok(b)) /* N10, 2.12 */
        return bs_errf(err, BS_EBADSIG,
                       "batch of record snapshots: its %zu snapshots are not "
                       "the ones the hub signed (altered, replaced or "
                       "reordered)",
                       b->n);
    return BS_OK;
}
