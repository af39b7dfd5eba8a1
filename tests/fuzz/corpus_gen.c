/*
 * corpus_gen.c - writes seed corpora for the fuzz harnesses (driven by
 * make_corpus.sh; the corpora are committed, this is how to remake them).
 *
 *   corpus_gen world OUT CRASHES    the deterministic world's exchange
 *                                   files, recorded session and crafted
 *                                   adversarial imports, and their pieces;
 *                                   crafted inputs that hit known bugs go
 *                                   to CRASHES/<harness>/bug-*
 *   corpus_gen check CORPUS         exit 1 if the committed world seeds
 *                                   no longer match the world (stale)
 *   corpus_gen split FILE OUT TAG   pieces of an exchange file written by
 *                                   the CLI: envelope, sets, changes
 *   corpus_gen records DIR OUT TAG  a node's stored records and log sets
 *
 * OUT/<harness>/<TAG>-<what> files are written; existing ones are replaced.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../../replication/bundle.h"
#include "../../replication/collections.h"
#include "../../replication/members.h"
#include "../../replication/records.h"
#include "../../replication/session.h"
#include "../../replication/setlog.h"
#include "../../replication/status.h"
#include "../../replication/streams.h"
#include "branchsync.pb-c.h"
#include "fuzz_world.h"

static const char *out_root, *crash_root;

static void emit(const char *harness, const char *name, const uint8_t *prefix,
                 size_t pn, const uint8_t *p, size_t n);

/* An input that made its harness fail, kept out of the seed corpus (which
 * libFuzzer must be able to load) in crashes/HARNESS/: bug-* while the bug
 * is open, regress-* once fixed (see CMakeLists.txt). */
static void
emit_crash(const char *harness, const char *name, const uint8_t *prefix,
           size_t pn, const uint8_t *p, size_t n)
{
    const char *saved = out_root;

    out_root = crash_root;
    emit(harness, name, prefix, pn, p, n);
    out_root = saved;
}

static void
emit(const char *harness, const char *name, const uint8_t *prefix, size_t pn,
     const uint8_t *p, size_t n)
{
    char dir[1024], path[1200];
    uint8_t *b = malloc(pn + n + 1);

    if (b == NULL)
        bsf_die("out of memory");
    snprintf(dir, sizeof dir, "%s/%s", out_root, harness);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        bsf_die("mkdir %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (pn > 0)
        memcpy(b, prefix, pn);
    if (n > 0)
        memcpy(b + pn, p, n);
    bsf_write_file(path, b, pn + n);
    if (chmod(path, 0644) != 0)
        bsf_die("chmod %s: %s", path, strerror(errno));
    free(b);
}

/* ---- pieces of exchange files ---- */

static void
split_set(const uint8_t *p, size_t n, const char *tag)
{
    char name[320];
    bs_errbuf err = {{0}};
    bs_csview *v;

    emit("changeset_decode", tag, NULL, 0, p, n);
    if (bs_changeset_decode(p, n, &v, &err) != BS_OK)
        return;
    for (size_t i = 0; i < v->count; i++) {
        if (!v->present[i])
            continue;
        snprintf(name, sizeof name, "%s-change%zu", tag, i + 1);
        emit("change", name, NULL, 0, v->changes[i].p, v->changes[i].n);
    }
    bs_changeset_free(v);
}

static void
split_file(const uint8_t *b, size_t n, const char *tag)
{
    char name[256];
    bst_frames f;

    emit("bundle_file", tag, NULL, 0, b, n);
    (void)bst_frames_split(b, n, &f); /* what frames, if not all */
    if (f.env.p != NULL) {
        snprintf(name, sizeof name, "%s-envelope", tag);
        emit("envelope", name, NULL, 0, f.env.p, f.env.n);
    }
    for (size_t i = 0; i < f.nsets; i++) {
        snprintf(name, sizeof name, "%s-set%zu", tag, i + 1);
        split_set(f.sets[i].p, f.sets[i].n, name);
    }
    for (size_t i = 0; i < f.nsnaps; i++) {
        snprintf(name, sizeof name, "%s-snapshot%zu", tag, i + 1);
        emit("snapshot", name, NULL, 0, f.snaps[i].p, f.snaps[i].n);
    }
    for (size_t i = 0; i < f.nbatches; i++) {
        snprintf(name, sizeof name, "%s-snapbatch%zu", tag, i + 1);
        emit("snapbatch", name, NULL, 0, f.batches[i].p, f.batches[i].n);
    }
    bst_frames_fini(&f);
}

/* ---- stored records and sets ---- */

/* Emit r as stored (the record encoding is canonical: a decoded record
 * encodes to the bytes it was decoded from). */
static void
emit_record(const bs_record *r, const char *name)
{
    bs_recenc e;
    bs_arena a;
    uint8_t *b;

    bs_arena_init(&a);
    if (bs_record_prepare(r, &a, &e) != BS_OK ||
        (b = malloc(e.size + 1)) == NULL)
        bsf_die("out of memory");
    bs_record_encode(r, &e, b);
    emit("record_decode", name, NULL, 0, b, e.size);
    free(b);
    bs_arena_fini(&a);
}

/* The live records of coll, in ID order; the first is copied to *first
 * (arena a) unless one was already. */
static void
dump_coll(bs_txn *t, const char *coll, const char *tag, size_t *i, bs_arena *a,
          bs_record *first, int *have_first)
{
    char name[256];
    bs_errbuf err = {{0}};
    bs_records_iter *it;
    const bs_record *r;
    const char *id;
    size_t idlen;
    bs_err rv;

    if (bs_records_iter_open(t, coll, NULL, NULL, &it) != BS_OK)
        bsf_die("reading the records of %s", coll);
    while ((rv = bs_records_iter_next(it, &id, &idlen, &r, &err)) == BS_OK) {
        snprintf(name, sizeof name, "%s-record%02zu", tag, ++*i);
        emit_record(r, name);
        if (!*have_first && coll[0] != '_') {
            bs_field *f = bs_arena_alloc(a, (r->nfields + 1) * sizeof *f);
            if (f == NULL)
                bsf_die("out of memory");
            memcpy(f, r->fields, r->nfields * sizeof *f);
            for (size_t k = 0; k < r->nfields; k++) {
                char *nm = bs_arena_alloc(a, f[k].namelen + 1u);
                if (nm == NULL)
                    bsf_die("out of memory");
                memcpy(nm, f[k].name, f[k].namelen);
                f[k].name = nm;
                if (f[k].val.type == BS_VTEXT) {
                    char *v = bs_arena_alloc(a, f[k].val.len + 1u);
                    if (v == NULL)
                        bsf_die("out of memory");
                    memcpy(v, f[k].val.s, f[k].val.len);
                    f[k].val.s = v;
                }
            }
            *first = *r;
            first->fields = f;
            *have_first = 1;
        }
    }
    if (rv != BS_ENOTFOUND)
        bsf_die("reading the records of %s: %s", coll, bs_errmsg(&err, rv));
    bs_records_iter_close(it);
}

/*
 * A node's stored records and log sets as seeds, read through the core
 * API: the live records of the system collections and of every user
 * collection (records.h), then one record with a tombstone (the first
 * user record with a newer delete merged into it, record.h), and every
 * set of every stream in the log (setlog.h), in the log's key order.
 */
static void
dump_store(bs_store *s, const char *tag)
{
    static const char *const sys[] = {BS_SYS_COLLECTIONS, BS_SYS_MEMBERS};
    bs_status_opts o = {0, 0, 1};
    bs_errbuf err = {{0}};
    char name[256];
    bs_streamtab tab;
    bs_record first;
    bs_status st;
    bs_arena a;
    bs_meta m;
    bs_txn *t;
    size_t i = 0;
    int have_first = 0;

    bs_arena_init(&a);
    if (bs_store_read(s, &t, &err) != BS_OK ||
        bs_meta_load(t, &m, &err) != BS_OK ||
        bs_status_read(t, &m, &o, &st, &err) != BS_OK)
        bsf_die("reading the store: %s", err.msg);
    for (size_t k = 0; k < sizeof sys / sizeof sys[0]; k++)
        dump_coll(t, sys[k], tag, &i, &a, &first, &have_first);
    for (size_t k = 0; k < st.ncolls; k++)
        dump_coll(t, st.colls[k].name, tag, &i, &a, &first, &have_first);
    bs_status_fini(&st);
    if (have_first) {
        bs_version del = first.alive;
        int changed;
        del.hlc += 1;
        if (bs_record_merge(&first, 1, NULL, 0, &del, &bsf_order, &a,
                            &changed) != BS_OK)
            bsf_die("merging a delete");
        snprintf(name, sizeof name, "%s-record-tomb", tag);
        emit_record(&first, name);
    }
    if (bs_streams_load(t, &tab) != BS_OK)
        bsf_die("reading the streams");
    i = 0;
    for (size_t k = 0; k < tab.n; k++) {
        uint64_t from = 0, at;
        bs_slice set;
        while (bs_setlog_from(t, tab.v[k].idx, from, &set, &at) == BS_OK) {
            snprintf(name, sizeof name, "%s-logset%02zu", tag, ++i);
            emit("changeset_decode", name, NULL, 0, set.p, set.n);
            from = at + 1;
        }
    }
    bs_streams_fini(&tab);
    bs_txn_abort(t);
    bs_arena_fini(&a);
}

/* ---- crafted imports ---- */

/* The sets of an exchange file, decoded (borrowing from the file). */
typedef struct xsets {
    const uint8_t *env;
    size_t env_n;
    bs_slice set[16];
    bs_csview *v[16];
    size_t n;
} xsets;

static void
xsets_parse(const uint8_t *b, size_t n, xsets *x)
{
    bst_frames f;

    memset(x, 0, sizeof *x);
    if (!bst_frames_split(b, n, &f) || f.nsets > 16)
        bsf_die("world file does not frame");
    x->env = f.env.p;
    x->env_n = f.env.n;
    for (size_t i = 0; i < f.nsets; i++) {
        x->set[i] = f.sets[i];
        if (bs_changeset_decode(f.sets[i].p, f.sets[i].n, &x->v[i], NULL) !=
            BS_OK)
            bsf_die("world file does not decode");
        x->n++;
    }
    bst_frames_fini(&f);
}

static void
xsets_fini(xsets *x)
{
    for (size_t i = 0; i < x->n; i++)
        bs_changeset_free(x->v[i]);
}

/* A branch set following `after` (or a fork of it with same_seq). */
static uint8_t *
branch_set(const bsf_world *w, const bs_csview *after, const bs_change *ch,
           size_t nch, int same_seq, size_t *n)
{
    bs_csbuild b;
    bs_sealed *x;
    bs_seal s;
    uint64_t seq = same_seq ? after->first : after->last + 1;
    uint8_t *out;

    bs_csbuild_init(&b);
    for (size_t i = 0; i < nch; i++) {
        bs_change c = ch[i];
        c.seq = seq + i;
        if (bs_csbuild_add(&b, &c) != BS_OK)
            bsf_die("crafting a change");
    }
    memset(&s, 0, sizeof s);
    memcpy(s.infobase, after->infobase, BS_INFOBASE_LEN);
    memcpy(s.origin, after->origin, BS_PK_LEN);
    memcpy(s.inc, after->inc, BS_INC_LEN);
    if (same_seq) {
        s.has_prev = after->has_prev;
        memcpy(s.prev_hash, after->prev_hash, BS_HASH_LEN);
    } else {
        s.has_prev = 1;
        memcpy(s.prev_hash, after->header_hash, BS_HASH_LEN);
    }
    s.created_ms = BSF_T0_MS + 1000;
    if (bs_csbuild_seal(&b, &s, w->branch.core.sk, &x) != BS_OK)
        bsf_die("sealing a crafted set");
    bs_csbuild_fini(&b);
    *n = bs_sealed_size(x);
    if ((out = malloc(*n)) == NULL)
        bsf_die("out of memory");
    bs_sealed_write(x, out);
    bs_sealed_free(x);
    return out;
}

/* to_hub's envelope and its first `keep` sets, then the extra sets,
 * re-sealed; as an import seed with flag byte `flags`. */
static void
craft_many(const bsf_world *w, const xsets *x, uint8_t *const *extra,
           const size_t *en, size_t nextra, const char *name, uint8_t flags)
{
    uint8_t head[8] = {'B', 'S', 'X', '1', 0, 0, 0, 1}, fh[5], *file, *sealed;
    size_t n = 0, cap = 8 + 5 + x->env_n, sn, keep = x->n;

    for (size_t i = 0; i < keep; i++)
        cap += 5 + x->set[i].n;
    for (size_t i = 0; i < nextra; i++)
        cap += 5 + en[i];
    if ((file = malloc(cap)) == NULL)
        bsf_die("out of memory");
    memcpy(file, head, 8);
    n = 8;
#define FRAME(t, p, len)                                                       \
    do {                                                                       \
        fh[0] = (t);                                                           \
        bs_put_u32be(fh + 1, (uint32_t)(len));                                 \
        memcpy(file + n, fh, 5);                                               \
        memcpy(file + n + 5, (p), (len));                                      \
        n += 5 + (len);                                                        \
    } while (0)
    FRAME(1, x->env, x->env_n);
    for (size_t i = 0; i < keep; i++)
        FRAME(2, x->set[i].p, x->set[i].n);
    for (size_t i = 0; i < nextra; i++)
        FRAME(2, extra[i], en[i]);
#undef FRAME
    sealed = bsf_reseal(w, file, n, BSF_RESEAL_FILE, &sn);
    if (strncmp(name, "bug-", 4) == 0 || strncmp(name, "regress-", 8) == 0)
        emit_crash("bundle_import", name, &flags, 1, sealed, sn);
    else
        emit("bundle_import", name, &flags, 1, sealed, sn);
    emit("bundle_file", name, NULL, 0, sealed, sn);
    free(sealed);
    free(file);
}

static void
craft(const bsf_world *w, const xsets *x, const uint8_t *extra, size_t en,
      size_t keep, const char *name, uint8_t flags)
{
    xsets y = *x;
    uint8_t *e = (uint8_t *)extra;

    y.n = keep;
    craft_many(w, &y, &e, &en, extra != NULL, name, flags);
}

static bs_change
text_change(const char *coll, const char *id, bs_field *f, size_t nf)
{
    bs_change c;

    memset(&c, 0, sizeof c);
    c.hlc = BS_HLC_MAKE(BSF_T0_MS + 900, 0);
    c.coll = coll;
    c.id = id;
    c.fields = f;
    c.nfields = nf;
    return c;
}

static void
crafted_imports(const bsf_world *w)
{
    static char names[8 * 512][16];
    static bs_field many[8][512];
    bs_field one[1];
    bs_change ch[8];
    xsets x;
    uint8_t *set;
    size_t n;

    xsets_parse(w->to_hub, w->to_hub_n, &x);
    if (x.n != 3)
        bsf_die("the world's file has %zu sets, not 3", x.n);
    memset(one, 0, sizeof one);
    one[0].name = "text";
    one[0].namelen = 4;
    one[0].val.type = BS_VTEXT;
    one[0].val.s = "forked";
    one[0].val.len = 6;

    /* A fork: another set 3 after the real one (S6: quarantine). */
    ch[0] = text_change("notes", "n1", one, 1);
    set = branch_set(w, x.v[2], ch, 1, 1, &n);
    craft(w, &x, set, n, 3, "w-fork", 0);
    free(set);

    /* A branch writing a system collection (S2: not permitted). */
    ch[0] = text_change(BS_SYS_MEMBERS, "x", one, 1);
    set = branch_set(w, x.v[2], ch, 1, 0, &n);
    craft(w, &x, set, n, 3, "w-sys-write", 0);
    free(set);

    /* A clock a day ahead (S10: held) and a gap (seq 5 after 3). */
    ch[0] = text_change("items", "a", one, 1);
    ch[0].hlc = BS_HLC_MAKE(BSF_T0_MS + 86400000, 0);
    set = branch_set(w, x.v[2], ch, 1, 0, &n);
    craft(w, &x, set, n, 3, "w-future", 0);
    free(set);
    craft(w, &x, x.set[2].p, x.set[2].n, 2, "w-set3-twice", 0);
    craft(w, &x, NULL, 0, 2, "w-first-two", 0);
    /* The same two sets: the second record written in the transaction
     * got garbled names (borrowed bytes of a moved LMDB node; fixed in
     * 12ebc09). */
    craft(w, &x, NULL, 0, 2, "regress-two-records-one-txn", 0);

    /* The first set with a broken signature: refused in pass 1. */
    {
        Bs__ChangeSet *cs =
            bs__change_set__unpack(NULL, x.set[0].n, x.set[0].p);
        uint8_t *bad;
        size_t bn;
        if (cs == NULL || cs->signature.len == 0)
            bsf_die("world set does not unpack");
        cs->signature.data[0] ^= 1;
        bn = bs__change_set__get_packed_size(cs);
        if ((bad = malloc(bn)) == NULL)
            bsf_die("out of memory");
        bs__change_set__pack(cs, bad);
        bs__change_set__free_unpacked(cs, NULL);
        craft(w, &x, bad, bn, 0, "regress-leak-refused-set", 0);
        free(bad);
    }

    /* 512-field changes (below what the receiver's capped decoder can
     * unpack: see the findings in the fuzz report) */
    for (int k = 0; k < 8; k++) {
        for (int i = 0; i < 512; i++) {
            bs_field *f = &many[k][i];
            char *nm = names[k * 512 + i];
            snprintf(nm, sizeof names[0], "f%d%03d", k, i);
            memset(f, 0, sizeof *f);
            f->name = nm;
            f->namelen = (uint16_t)strlen(nm);
            f->val.type = BS_VTRUE;
        }
        ch[k] = text_change("items", "a", many[k], 512);
    }

    /* One set writing a large record twice (the second write reads the
     * first one's bytes while replacing them). */
    ch[0].id = "big";
    ch[0].nfields = 300;
    ch[1] = text_change("items", "big", one, 1);
    set = branch_set(w, x.v[2], ch, 2, 0, &n);
    craft(w, &x, set, n, 3, "regress-same-record-twice", 0);
    free(set);
    ch[0] = text_change("items", "a", many[0], 512);
    ch[1] = text_change("items", "a", many[1], 512);

    /* A change with BS_FIELDS_MAX fields, as `put` accepts. */
    {
        static bs_field wide[BS_FIELDS_MAX];
        bs_change c = text_change("items", "wide", wide, BS_FIELDS_MAX);
        bs_csbuild b;
        for (int i = 0; i < BS_FIELDS_MAX; i++) {
            wide[i] = many[i / 512][i % 512];
            wide[i].val.type = BS_VNULL;
        }
        c.seq = 1;
        bs_csbuild_init(&b);
        if (bs_csbuild_add(&b, &c) != BS_OK)
            bsf_die("encoding the wide change");
        emit_crash("change", "regress-wide-change", NULL, 0, b.changes[0].p,
                   b.changes[0].n);
        bs_csbuild_fini(&b);
    }

    /* One record pushed past 4,096 fields by 8 sets of 512 new fields
     * (the hub's record has 5): once refused while applying the last set,
     * after the others were committed; a merge now never refuses. */
    {
        uint8_t *sets[8];
        size_t ns[8];
        bs_csview *prev = x.v[2], *cur[8];
        for (int k = 0; k < 8; k++) {
            sets[k] = branch_set(w, prev, &ch[k], 1, 0, &ns[k]);
            if (bs_changeset_decode(sets[k], ns[k], &cur[k], NULL) != BS_OK)
                bsf_die("crafted set does not decode");
            prev = cur[k];
        }
        craft_many(w, &x, sets, ns, 8, "regress-merge-past-4096-fields", 0);
        for (int k = 0; k < 8; k++) {
            bs_changeset_free(cur[k]);
            free(sets[k]);
        }
    }
    xsets_fini(&x);
}

/* ---- the recorded session ---- */

typedef struct rec {
    uint8_t *msgs;
    size_t n, cap, count;
    uint8_t lens[2 * 255];
} rec;

static void
rec_add(rec *r, const uint8_t *m, size_t n)
{
    if (r->count == 255 || n > 65535)
        return;
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        if ((r->msgs = realloc(r->msgs, r->cap)) == NULL)
            bsf_die("out of memory");
    }
    memcpy(r->msgs + r->n, m, n);
    r->n += n;
    r->lens[2 * r->count] = (uint8_t)(n >> 8);
    r->lens[2 * r->count + 1] = (uint8_t)n;
    r->count++;
}

static void
rec_emit(const rec *r, size_t count, const char *name)
{
    uint8_t *b = malloc(1 + 2 * count + r->n + 1);
    size_t bytes = 0;

    if (b == NULL)
        bsf_die("out of memory");
    b[0] = (uint8_t)count;
    memcpy(b + 1, r->lens, 2 * count);
    for (size_t i = 0; i < count; i++)
        bytes += (size_t)r->lens[2 * i] << 8 | r->lens[2 * i + 1];
    memcpy(b + 1 + 2 * count, r->msgs, bytes);
    emit("session", name, NULL, 0, b, 1 + 2 * count + bytes);
    free(b);
}

static int
shuttle(bs_session *from, bs_session *to, rec *r)
{
    uint8_t *m;
    size_t n;
    int moved = 0;

    while (bs_session_output(from, &m, &n) == BS_OK) {
        if (r != NULL)
            rec_add(r, m, n);
        if (r != NULL && m[0] == BS_MSG_HELLO && n > 1)
            emit("envelope", "w-session-hello", NULL, 0, m + 1, n - 1);
        if (r != NULL && m[0] == BS_MSG_ACK && n > 1)
            emit("envelope", "w-session-ack", NULL, 0, m + 1, n - 1);
        bsf_ignore(bs_session_input(to, m, n));
        free(m);
        moved++;
    }
    return moved;
}

static void
record_session(bsf_world *w)
{
    bs_session_cfg cb = {w->branch.n->store,
                         w->branch.core.sk,
                         bsf_clock,
                         BSF_SKEW_MS,
                         1,
                         "head",
                         w->hub.n->meta.pk,
                         0};
    bs_session_cfg ch = {w->hub.n->store,
                         w->hub.core.sk,
                         bsf_clock,
                         BSF_SKEW_MS,
                         0,
                         NULL,
                         w->branch.n->meta.pk,
                         0};
    bs_session *b, *h;
    rec r = {0};

    if (bs_session_new(&cb, &b) != BS_OK || bs_session_new(&ch, &h) != BS_OK ||
        bs_session_start(b) != BS_OK)
        bsf_die("starting a session");
    for (int round = 0; round < 1000; round++)
        if (shuttle(b, h, &r) + shuttle(h, b, NULL) == 0)
            break;
    if (bs_session_state_of(h) != BS_SESSION_COMPLETE)
        bsf_die("recorded session did not complete: %s", bs_session_error(h));
    rec_emit(&r, r.count, "w-branch-to-hub");
    /* Every prefix: a session cut short after each message. */
    for (size_t k = 1; k < r.count; k++) {
        char name[64];
        snprintf(name, sizeof name, "w-branch-to-hub-first%02zu", k);
        rec_emit(&r, k, name);
    }
    bs_session_free(b);
    bs_session_free(h);
    free(r.msgs);
}

/* ---- commands ---- */

static void
cmd_world(void)
{
    static bsf_world w;
    uint8_t flag;

    bsf_world_build(&w, "corpus");
    split_file(w.to_hub, w.to_hub_n, "w-to-hub");
    split_file(w.to_branch, w.to_branch_n, "w-to-branch");
    for (flag = 0; flag < 8; flag += 1) {
        char name[64];
        if (flag != 0 && flag != 3 && flag != 7)
            continue;
        snprintf(name, sizeof name, "w-to-hub-flags%u", flag);
        emit("bundle_import", name, &flag, 1, w.to_hub, w.to_hub_n);
    }
    flag = 3;
    emit("bundle_import", "w-to-branch-flags3", &flag, 1, w.to_branch,
         w.to_branch_n);
    crafted_imports(&w);
    dump_store(w.hub.n->store, "w-hub");
    dump_store(w.branch.n->store, "w-branch");
    record_session(&w);
    dump_store(w.hub.n->store, "w-hub-after-session");
}

/* The world's own exchange file in the committed corpus still imports at
 * the world's hub: the seeds of the import and session harnesses are not
 * stale (keys, formats).  Exit 1 with advice when they are. */
static int
cmd_check(const char *corpus)
{
    static bsf_world w;
    char path[1200], file[1300];
    bs_errbuf err = {{0}};
    bs_xstats st;
    uint8_t *b;
    size_t n;
    bs_err rv;

    bsf_world_build(&w, "check");
    snprintf(path, sizeof path, "%s/bundle_import/w-to-hub-flags0", corpus);
    if ((b = bsf_read_file(path, &n)) == NULL || n < 1) {
        fprintf(stderr, "corpus_gen: %s: missing\n", path);
        return 1;
    }
    snprintf(file, sizeof file, "%s/seed.bsx", w.root);
    bsf_write_file(file, b + 1, n - 1);
    free(b);
    rv = bs_bundle_import(w.hub.n->store, NULL, file, bsf_clock, BSF_SKEW_MS, 0,
                          &st, &err);
    if (rv != BS_OK || st.sets != 3 || n - 1 != w.to_hub_n) {
        fprintf(stderr,
                "corpus_gen: the committed world seeds are stale (%s: %s, "
                "%llu sets): run tests/fuzz/make_corpus.sh\n",
                path, bs_errmsg(&err, rv), (unsigned long long)st.sets);
        return 1;
    }
    printf("corpus_gen: world seeds are current\n");
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "world") == 0) {
        out_root = argv[2];
        crash_root = argv[3];
        if (mkdir(crash_root, 0755) != 0 && errno != EEXIST)
            bsf_die("mkdir %s: %s", crash_root, strerror(errno));
        cmd_world();
    } else if (argc == 3 && strcmp(argv[1], "check") == 0) {
        return cmd_check(argv[2]);
    } else if (argc == 5 && strcmp(argv[1], "split") == 0) {
        size_t n;
        uint8_t *b = bsf_read_file(argv[2], &n);
        out_root = argv[3];
        if (b == NULL)
            bsf_die("%s: %s", argv[2], strerror(errno));
        bsf_init();
        split_file(b, n, argv[4]);
        free(b);
    } else if (argc == 5 && strcmp(argv[1], "records") == 0) {
        bs_errbuf err = {{0}};
        bs_node *nd;
        bs_err rv;
        out_root = argv[3];
        bsf_init();
        if ((rv = bs_node_open(argv[2], 1, &nd, &err)) != BS_OK)
            bsf_die("open %s: %s", argv[2], bs_errmsg(&err, rv));
        dump_store(nd->store, argv[4]);
        bs_node_close(nd);
    } else {
        fprintf(stderr, "usage: corpus_gen world OUT CRASHES | check CORPUS | "
                        "split FILE OUT TAG | records NODEDIR OUT TAG\n");
        return 2;
    }
    return 0;
}
