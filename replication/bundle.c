/*
 * bundle.c - exchange file writer, verifier and importer.
 */
#include "bundle.h"

#include "members.h"
#include "movein.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* F_SNAPSHOT: revision 2026-12 (snapshots), only to a peer whose envelope
 * announced BS_FEATURE_SNAPSHOTS; F_SNAPBATCH: revision 2026-12
 * (bootstrap), only in a seed (BS_FEATURE_BOOTSTRAP) */
#define F_ENVELOPE  1
#define F_SET       2
#define F_TRAILER   3
#define F_SNAPSHOT  4
#define F_SNAPBATCH 5
#define HEAD_LEN    8
#define FRAME_HEAD  5
#define TRAILER_LEN (BS_HASH_LEN + BS_SIG_LEN)
#define FRAME_MAX   BS_SET_MAX_ENCODED

/* ---- writing ---- */

typedef struct writer {
    FILE *f;
    bs_hash_state h;
    uint64_t bytes, changes;
    int failed;
} writer;

static void
w_bytes(writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (fwrite(p, 1, n, w->f) != n)
        w->failed = 1;
    bs_hash_update(&w->h, p, n);
    w->bytes += n;
}

static void
w_frame(writer *w, uint8_t type, const void *p, size_t n)
{
    uint8_t head[FRAME_HEAD];

    head[0] = type;
    bs_put_u32be(head + 1, (uint32_t)n);
    w_bytes(w, head, FRAME_HEAD);
    w_bytes(w, p, n);
}

static bs_err
emit_set(void *ctx, bs_slice set)
{
    writer *w = ctx;

    w_frame(w, F_SET, set.p, set.n);
    return w->failed ? BS_EIO : BS_OK;
}

typedef struct export_ctx {
    const char *peer;
    uint64_t now_ms;
} export_ctx;

static bs_err
bump_sent(bs_txn *t, void *arg, bs_errbuf *err)
{
    export_ctx *x = arg;
    bs_peer p;
    bs_err rv;

    (void)err;
    if ((rv = bs_peer_get(t, x->peer, &p)) != BS_OK)
        return rv;
    p.sent_no++;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

/* A seed's snapshot bodies waiting for their batch's signature; with
 * writers (nw of them), version-2 batches (protocol.md 2.12). */
typedef struct batcher {
    bs_slice *bodies;
    size_t n, cap, bytes;
    uint8_t *writers;
    size_t nw;
} batcher;

/* Sign and write the bodies gathered as one batch (frame 5). */
static bs_err
flush_batch(writer *w, batcher *b, const bs_meta *m, const uint8_t *sk,
            uint64_t now_ms)
{
    uint8_t *out;
    size_t n;
    bs_err rv = BS_OK;

    if (b->n > 0 &&
        (rv = b->nw > 0
                  ? bs_snapbatch_encode2(m->infobase, m->pk, now_ms, b->writers,
                                         b->nw, b->bodies, b->n, sk, &out, &n)
                  : bs_snapbatch_encode(m->infobase, m->pk, now_ms, b->bodies,
                                        b->n, sk, &out, &n)) == BS_OK) {
        w_frame(w, F_SNAPBATCH, out, n);
        free(out);
    }
    if (rv == BS_OK && w->failed)
        rv = BS_EIO;
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->bodies[i].p);
    b->n = b->bytes = 0;
    return rv;
}

/* Add a body to the batch (taking it), writing the batch first when the
 * body would take it past BS_SNAPBATCH_BYTES or BS_SNAPBATCH_MAX. */
static bs_err
add_body(writer *w, batcher *b, const bs_meta *m, const uint8_t *sk,
         uint64_t now_ms, uint8_t *body, size_t len)
{
    bs_err rv;

    if (b->n > 0 &&
        (b->bytes + len > BS_SNAPBATCH_BYTES || b->n == BS_SNAPBATCH_MAX) &&
        (rv = flush_batch(w, b, m, sk, now_ms)) != BS_OK) {
        free(body);
        return rv;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        bs_slice *nb = realloc(b->bodies, cap * sizeof *nb);
        if (nb == NULL) {
            free(body);
            return BS_ENOMEM;
        }
        b->bodies = nb;
        b->cap = cap;
    }
    b->bodies[b->n++] = (bs_slice){body, len};
    b->bytes += len;
    return BS_OK;
}

/* The hub answers the peer's wants (as its last envelope said them) with
 * record snapshots, after the sets: only to a peer that takes them.  A
 * seed's snapshots go in signed batches (protocol.md 2.11). */
static bs_err
write_snapshots(writer *w, bs_txn *t, const bs_meta *m, const bs_peer *p,
                int seed, const bs_snapwant *from, const uint8_t *sk,
                uint64_t now_ms, uint64_t *count)
{
    bs_snapwant *wants;
    bs_movein_cursor c;
    batcher b = {NULL, 0, 0, 0, NULL, 0};
    uint8_t *snap_marker;
    size_t marker_n;
    uint32_t features;
    size_t n;
    bs_err rv;

    if (!m->joined) /* else the hub, or a regional hub relaying (movein.h) */
        return BS_OK;
    if ((rv = bs_movein_peer(t, p->pk, &features, &wants, &n)) != BS_OK)
        return rv;
    /* a peer that takes version-2 batches gets them (2.12), unless the
     * hub has more streams than a header lists */
    if (seed && (features & BS_FEATURE_COMPACT) &&
        (rv = bs_movein_writers(t, &b.writers, &b.nw)) != BS_OK &&
        rv != BS_EINVAL) {
        free(wants);
        return rv;
    }
    if (seed) { /* every collection, whatever the peer wanted */
        free(wants);
        features = BS_FEATURE_SNAPSHOTS;
        if ((rv = bs_movein_collections(t, &wants, &n)) != BS_OK)
            return rv;
    }
    bs_movein_cursor_init(&c, p->pk, wants,
                          (features & BS_FEATURE_SNAPSHOTS) ? n : 0);
    c.bodies = !seed ? 0 : b.nw > 0 ? 2 : 1;
    if (from != NULL)
        c.from = *from;
    for (;;) {
        uint8_t *snap;
        size_t len;

        if ((rv = bs_movein_next(t, m, sk, &c, now_ms, &snap, &len)) != BS_OK)
            break;
        if (seed) {
            if ((rv = add_body(w, &b, m, sk, now_ms, snap, len)) != BS_OK)
                break;
            continue;
        }
        w_frame(w, F_SNAPSHOT, snap, len);
        free(snap);
        if (w->failed) {
            rv = BS_EIO;
            break;
        }
    }
    if (rv == BS_ENOTFOUND && seed &&
        (rv = bs_movein_seed_marker(t, m, NULL, now_ms, &snap_marker,
                                    &marker_n)) == BS_OK) {
        rv = add_body(w, &b, m, sk, now_ms, snap_marker, marker_n);
        c.sent++;
    }
    if (rv == BS_ENOTFOUND || (seed && rv == BS_OK))
        rv = flush_batch(w, &b, m, sk, now_ms);
    for (size_t i = 0; i < b.n; i++) /* left by an error */
        free((void *)b.bodies[i].p);
    free(b.bodies);
    free(b.writers);
    *count = c.sent;
    bs_movein_cursor_fini(&c);
    free(wants);
    return rv;
}

static bs_err
write_file(bs_txn *t, const bs_meta *m, const bs_peer *p, int seed,
           const bs_snapwant *from, const uint8_t *sk, FILE *f, uint64_t now_ms,
           bs_xstats *st, bs_errbuf *err)
{
    writer w = {f, {{0}}, 0, 0, 0};
    uint8_t head[HEAD_LEN], trailer[TRAILER_LEN], *env;
    bs_envelope e;
    size_t en;
    bs_err rv;

    if ((rv = bs_xchg_envelope(t, m, p, p->sent_no + 1, now_ms, &e)) != BS_OK)
        return rv;
    if (seed) {
        e.features |= BS_FEATURE_BOOTSTRAP;
        e.seed = 1;
    }
    rv = bs_envelope_encode(&e, &env, &en);
    bs_envelope_fini(&e);
    if (rv != BS_OK)
        return rv;
    bs_hash_init(&w.h);
    memcpy(head, BS_FILE_MAGIC, 4);
    bs_put_u32be(head + 4, BS_FILE_VERSION);
    w_bytes(&w, head, HEAD_LEN);
    w_frame(&w, F_ENVELOPE, env, en);
    free(env);
    /* A resumed seed: the sets since what the peer acknowledged travel as
     * usual (its positions came from the first part's anchors), so that
     * the records the first part sent get the changes since. */
    rv = seed && (from == NULL || from->coll[0] == '\0')
             ? bs_xchg_collect_seed(t, m, p, emit_set, &w, &st->sets, err)
             : bs_xchg_collect(t, m, p, emit_set, &w, &st->sets, err);
    if (rv == BS_ESTORE || rv == BS_ESTALE)
        return rv; /* a damaged set, or one compacted: named by collect */
    if (rv == BS_OK)
        rv = write_snapshots(&w, t, m, p, seed, from, sk, now_ms,
                             &st->snapshots);
    if (rv != BS_OK)
        return bs_errf(err, rv, "cannot write exchange file");
    bs_hash_final(&w.h, trailer);
    bs_sign(trailer + BS_HASH_LEN, BS_FILE_CONTEXT, trailer, BS_HASH_LEN, sk);
    w_frame(&w, F_TRAILER, trailer, TRAILER_LEN);
    st->bytes = w.bytes;
    if (w.failed || fflush(f) != 0 || fsync(fileno(f)) != 0)
        return bs_errf(err, BS_EIO, "cannot write exchange file: %s",
                       strerror(errno));
    return BS_OK;
}

static bs_err
export_file(bs_store *s, const uint8_t *sk, const char *peer, int seed,
            const char *path, uint64_t now_ms, uint64_t retention_ms,
            bs_xstats *st, bs_errbuf *err)
{
    char tmp[4200];
    export_ctx x = {peer, now_ms};
    bs_snapwant from;
    int has_from = 0;
    bs_meta m;
    bs_peer p;
    bs_txn *t;
    FILE *f;
    bs_err rv;

    memset(st, 0, sizeof *st);
    snprintf(st->peer, sizeof st->peer, "%s", peer);
    if ((rv = bs_store_read(s, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        goto out_txn;
    if ((rv = bs_peer_get(t, peer, &p)) != BS_OK) {
        if (rv == BS_ENOTFOUND)
            rv = bs_errf(err, BS_ENOTFOUND, "unknown peer \"%s\" (see peer ls)",
                         peer);
        goto out_txn;
    }
    if ((rv = bs_xchg_check_stale(t, &m, &p, now_ms, retention_ms, err)) !=
        BS_OK)
        goto out_peer;
    /* A branch that has not joined yet sends an envelope only: its vector
     * tells the hub where to start (after a restore, say); its own sets
     * travel once it joined and re-signed them. */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((f = fopen(tmp, "wb")) == NULL) {
        rv = bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
        goto out_peer;
    }
    /* The peer asked for a seed, or to go on with one (its last recorded
     * envelope; movein.h bs_movein_note_seed): it gets one. */
    if (m.joined && memcmp(m.pk, m.hub, BS_PK_LEN) == 0 &&
        (rv = bs_movein_peer_seed(t, p.pk, &from)) != BS_ENOTFOUND) {
        if (rv != BS_OK) {
            fclose(f);
            unlink(tmp);
            goto out_peer;
        }
        seed = has_from = 1;
    }
    if (!seed && m.joined && memcmp(m.pk, m.hub, BS_PK_LEN) != 0 &&
        bs_movein_peer_seed(t, p.pk, &from) == BS_OK &&
        bs_members_is_region(t, &m, m.pk)) { /* protocol.md 8.9 */
        fclose(f);
        unlink(tmp);
        rv = bs_errf(err, BS_EINVAL,
                     "%s is to be seeded, and a regional hub seeds over the "
                     "network only: run `branchsync sync %s` (a seed by file "
                     "comes from the head office to a branch paired with it)",
                     peer, peer);
        goto out_peer;
    }
    if (seed && (!m.joined || memcmp(m.pk, m.hub, BS_PK_LEN) != 0)) {
        fclose(f);
        unlink(tmp);
        rv = bs_errf(err, BS_EINVAL,
                     "only the infobase's hub seeds a branch (export --seed)");
        goto out_peer;
    }
    rv = write_file(t, &m, &p, seed, has_from ? &from : NULL, sk, f, now_ms, st,
                    err);
    st->seed = seed;
    fclose(f);
    if (rv == BS_OK && rename(tmp, path) != 0)
        rv = bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    if (rv != BS_OK)
        unlink(tmp);
out_peer:
    bs_peer_fini(&p);
out_txn:
    bs_txn_abort(t);
    if (rv == BS_OK)
        rv = bs_store_write(s, bump_sent, &x, err);
    return rv;
}

bs_err
bs_bundle_export(bs_store *s, const uint8_t *sk, const char *peer,
                 const char *path, uint64_t now_ms, uint64_t retention_ms,
                 bs_xstats *st, bs_errbuf *err)
{
    return export_file(s, sk, peer, 0, path, now_ms, retention_ms, st, err);
}

bs_err
bs_bundle_export_seed(bs_store *s, const uint8_t *sk, const char *peer,
                      const char *path, uint64_t now_ms, uint64_t retention_ms,
                      bs_xstats *st, bs_errbuf *err)
{
    return export_file(s, sk, peer, 1, path, now_ms, retention_ms, st, err);
}

/* ---- reading ---- */

typedef struct frame {
    uint8_t type;
    bs_slice body;
} frame;

typedef struct parsed {
    void *map;
    size_t len;
    frame *frames;
    size_t nframes;
    bs_slice *raw, *snapraw;
    uint8_t *snapkind;
    bs_inbound in;
    /* the checksum (F5): the hash of the file's first sum_len bytes, made
     * on a thread of its own while the file is applied and compared with
     * the trailer's `want` before anything is committed (sealed) */
    size_t sum_len;
    const uint8_t *want;
    uint8_t got[BS_HASH_LEN];
    pthread_t sum_th;
    int sum_started, sum_joined;
} parsed;

#define SUM_THREAD_BYTES (1u << 20)

static void *
sum_thread(void *arg)
{
    parsed *p = arg;

    bs_hash(p->got, p->map, p->sum_len);
    return NULL;
}

static bs_err bad_file(bs_errbuf *err, const char *what);

/* bs_inbound.sealed: the checksum made meanwhile matches the trailer's. */
static bs_err
sealed(void *ctx, bs_errbuf *err)
{
    parsed *p = ctx;

    if (p->sum_started && !p->sum_joined) {
        pthread_join(p->sum_th, NULL);
        p->sum_joined = 1;
    }
    if (!p->sum_started) { /* no thread: made here */
        bs_hash(p->got, p->map, p->sum_len);
        p->sum_started = p->sum_joined = 1;
    }
    if (memcmp(p->got, p->want, BS_HASH_LEN) != 0)
        return bad_file(err, "checksum mismatch (corrupt or tampered)");
    return BS_OK;
}

static void
parsed_free(parsed *p)
{
    if (p->sum_started && !p->sum_joined)
        pthread_join(p->sum_th, NULL);
    bs_inbound_fini(&p->in);
    free(p->raw);
    free(p->snapraw);
    free(p->snapkind);
    free(p->frames);
    if (p->map != NULL)
        munmap(p->map, p->len);
    memset(p, 0, sizeof *p);
}

static bs_err
bad_file(bs_errbuf *err, const char *what)
{
    return bs_errf(err, BS_EMALFORMED, "bad exchange file: %s", what);
}

static bs_err
map_file(const char *path, parsed *p, bs_errbuf *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return bs_errf(err, errno == ENOENT ? BS_EINVAL : BS_EIO, "%s: %s",
                       path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bs_errf(err, BS_EINVAL, "%s: not a regular file", path);
    }
    p->len = (size_t)st.st_size;
    if (p->len < HEAD_LEN) {
        close(fd);
        return bad_file(err, "too short to be one (truncated?)");
    }
    p->map = mmap(NULL, p->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p->map == MAP_FAILED) {
        p->map = NULL;
        return bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    }
    return BS_OK;
}

/* Split into frames and check magic, version and framing; the checksum
 * is made on a thread meanwhile and checked before anything is written
 * (sealed, via bs_inbound.sealed). */
static bs_err
split(parsed *p, bs_errbuf *err)
{
    const uint8_t *b = p->map;
    size_t pos = HEAD_LEN, cap = 0;

    if (memcmp(b, BS_FILE_MAGIC, 4) != 0)
        return bad_file(err, "not a branchsync exchange file (bad magic)");
    if (bs_get_u32be(b + 4) != BS_FILE_VERSION)
        return bs_errf(err, BS_EMALFORMED,
                       "exchange file format %u is not supported (this "
                       "node reads %u)",
                       bs_get_u32be(b + 4), BS_FILE_VERSION);
    while (pos < p->len) {
        frame f;
        uint32_t n;

        if (p->len - pos < FRAME_HEAD)
            return bad_file(err, "truncated frame header");
        f.type = b[pos];
        n = bs_get_u32be(b + pos + 1);
        if (n > FRAME_MAX || p->len - pos - FRAME_HEAD < n)
            return bad_file(err, "truncated or oversized frame");
        f.body = (bs_slice){b + pos + FRAME_HEAD, n};
        if (f.type < F_ENVELOPE || f.type > F_SNAPBATCH)
            return bad_file(err, "unknown frame type");
        if (p->nframes == cap) {
            frame *nf;
            cap = cap ? cap * 2 : 64;
            if ((nf = realloc(p->frames, cap * sizeof *nf)) == NULL)
                return BS_ENOMEM;
            p->frames = nf;
        }
        p->frames[p->nframes++] = f;
        if (f.type == F_TRAILER) {
            if (n != TRAILER_LEN || pos + FRAME_HEAD + n != p->len)
                return bad_file(err, "trailer is not the last frame");
            p->sum_len = pos;
            p->want = f.body.p;
            /* a small file is hashed when asked, without a thread */
            p->sum_started =
                pos >= SUM_THREAD_BYTES &&
                pthread_create(&p->sum_th, NULL, sum_thread, p) == 0;
            break;
        }
        pos += FRAME_HEAD + n;
    }
    if (p->nframes < 2 || p->frames[p->nframes - 1].type != F_TRAILER)
        return bad_file(err, "no trailer (truncated?)");
    if (p->frames[0].type != F_ENVELOPE)
        return bad_file(err, "does not start with an envelope");
    return BS_OK;
}

/* What can be checked of the file itself (F1-F8, signature included)
 * before its sets are admitted. */
static bs_err
check_frames(parsed *p, bs_errbuf *err)
{
    const frame *tr;
    bs_err rv;

    if ((rv = bs_envelope_decode(p->frames[0].body.p, p->frames[0].body.n,
                                 &p->in.env, err)) != BS_OK)
        return rv;
    tr = &p->frames[p->nframes - 1];
    if (bs_verify(tr->body.p + BS_HASH_LEN, BS_FILE_CONTEXT, tr->body.p,
                  BS_HASH_LEN, p->in.env.sender) != BS_OK)
        return bs_errf(err, BS_EBADSIG, "the file's signature does not verify");
    /* The sets are the frames between envelope and trailer, decoded one at
     * a time by each pass (bounded memory whatever the file's size). */
    if ((p->raw = calloc(p->nframes, sizeof *p->raw)) == NULL ||
        (p->snapraw = calloc(p->nframes, sizeof *p->snapraw)) == NULL ||
        (p->snapkind = calloc(p->nframes, 1)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 1; i + 1 < p->nframes; i++) {
        if (p->frames[i].type == F_SNAPSHOT ||
            p->frames[i].type == F_SNAPBATCH) {
            p->snapkind[p->in.nsnaps] = p->frames[i].type == F_SNAPBATCH;
            p->snapraw[p->in.nsnaps++] = p->frames[i].body;
            continue;
        }
        if (p->frames[i].type != F_SET)
            return bad_file(err, "envelope in the middle of the file");
        if (p->in.nsnaps > 0)
            return bad_file(err, "a change set after a record snapshot");
        p->raw[p->in.nsets++] = p->frames[i].body;
    }
    p->in.raw = p->raw;
    p->in.snaps = p->snapraw;
    p->in.snapbatch = p->snapkind;
    p->in.sealed = sealed;
    p->in.sealed_ctx = p;
    return BS_OK;
}

static bs_err
check_file(const char *path, parsed *p, bs_errbuf *err)
{
    bs_errbuf e2 = {{0}};
    bs_err rv, s;

    if ((rv = map_file(path, p, err)) != BS_OK || (rv = split(p, err)) != BS_OK)
        return rv;
    if ((rv = check_frames(p, err)) == BS_OK || bs_err_local(rv) ||
        p->want == NULL)
        return rv;
    if ((s = sealed(p, &e2)) != BS_OK) { /* a corrupt file is named so */
        if (err != NULL)
            *err = e2;
        return s;
    }
    return rv;
}

bs_err
bs_bundle_import(bs_store *s, const uint8_t *sk, const char *path,
                 bs_clock clock, uint64_t max_skew_ms, uint64_t retention_ms,
                 bs_xstats *st, bs_errbuf *err)
{
    parsed p;
    bs_err rv;

    memset(&p, 0, sizeof p);
    memset(st, 0, sizeof *st);
    if ((rv = check_file(path, &p, err)) == BS_OK)
        rv = bs_xchg_import(s, sk, &p.in, clock, max_skew_ms, retention_ms, st,
                            err);
    parsed_free(&p);
    return rv;
}

/* ---- inspect ---- */

static void
inspect_set(const bs_slice body, bs_inspect_set *o)
{
    bs_errbuf e = {{0}};
    bs_csview *v;

    memset(o, 0, sizeof *o);
    o->bytes = body.n;
    if (bs_changeset_decode(body.p, body.n, &v, &e) != BS_OK) {
        snprintf(o->error, sizeof o->error, "%s", e.msg);
        return;
    }
    o->decoded = 1;
    for (size_t i = 0; i < v->count; i++)
        o->changes += v->present[i];
    o->omitted = v->count - o->changes;
    memcpy(o->origin, v->origin, BS_PK_LEN);
    memcpy(o->inc, v->inc, BS_INC_LEN);
    memcpy(o->infobase, v->infobase, BS_INFOBASE_LEN);
    o->first = v->first;
    o->last = v->last;
    o->signature_ok = bs_changeset_verify(v, v->origin) == BS_OK;
    o->summary = v->summary_form ? 2 : v->summary.n > 0;
    o->buckets = (uint32_t)v->nbuckets;
    for (size_t b = 0; b < v->nbuckets; b++)
        o->carried += v->bucket_kept[b];
    bs_changeset_free(v);
}

static void
inspect_envelope(bs_inspect *out, const bs_envelope *e)
{
    out->has_envelope = 1;
    memcpy(out->sender, e->sender, BS_PK_LEN);
    if ((out->has_receiver = e->has_receiver))
        memcpy(out->receiver, e->receiver, BS_PK_LEN);
    snprintf(out->sender_name, sizeof out->sender_name, "%s", e->sender_name);
    out->message_no = e->message_no;
    out->created_ms = e->created_ms;
    out->acknowledged_streams = e->nack;
}

static bs_err
inspect_frames(parsed *p, bs_inspect *out)
{
    const uint8_t *b = p->map;
    size_t pos = HEAD_LEN, cap = 0;

    while (pos < p->len) {
        uint32_t n;
        bs_slice body;

        if (p->len - pos < FRAME_HEAD ||
            (n = bs_get_u32be(b + pos + 1)) > p->len - pos - FRAME_HEAD) {
            out->framing = "truncated";
            break;
        }
        body = (bs_slice){b + pos + FRAME_HEAD, n};
        if (b[pos] == F_ENVELOPE) {
            bs_envelope_fini(&p->in.env); /* a second one replaces it */
            if (bs_envelope_decode(body.p, body.n, &p->in.env, NULL) == BS_OK)
                inspect_envelope(out, &p->in.env);
        } else if (b[pos] == F_SET) {
            if (out->nsets == cap) {
                bs_inspect_set *ns;
                cap = cap ? cap * 2 : 16;
                if ((ns = realloc(out->sets, cap * sizeof *ns)) == NULL)
                    return BS_ENOMEM;
                out->sets = ns;
            }
            inspect_set(body, &out->sets[out->nsets++]);
        } else if (b[pos] == F_SNAPSHOT) {
            out->snapshots++;
        } else if (b[pos] == F_SNAPBATCH) {
            bs_snapbatch *sb;
            if (bs_snapbatch_decode(body.p, body.n, &sb, NULL) == BS_OK) {
                out->snapshots += sb->n;
                bs_snapbatch_free(sb);
            }
        } else if (b[pos] == F_TRAILER && n == TRAILER_LEN) {
            uint8_t h[BS_HASH_LEN];
            bs_hash(h, b, pos);
            out->checksum =
                memcmp(h, body.p, BS_HASH_LEN) ? "MISMATCH" : "valid";
            out->file_signature =
                p->in.env.version &&
                        bs_verify(body.p + BS_HASH_LEN, BS_FILE_CONTEXT, body.p,
                                  BS_HASH_LEN, p->in.env.sender) == BS_OK
                    ? "valid"
                    : "INVALID";
        } else {
            out->framing = "bad frame";
        }
        pos += FRAME_HEAD + n;
    }
    return BS_OK;
}

bs_err
bs_bundle_inspect(const char *path, bs_inspect *out, bs_errbuf *err)
{
    parsed p;
    bs_err rv;

    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    if ((rv = map_file(path, &p, err)) != BS_OK)
        return rv;
    if (memcmp(p.map, BS_FILE_MAGIC, 4) != 0 ||
        bs_get_u32be((const uint8_t *)p.map + 4) != BS_FILE_VERSION) {
        parsed_free(&p);
        return bad_file(err, "not a branchsync exchange file of format 1");
    }
    out->format = BS_FILE_VERSION;
    out->bytes = p.len;
    out->framing = "ok";
    out->checksum = out->file_signature = "missing";
    rv = inspect_frames(&p, out);
    parsed_free(&p);
    if (rv != BS_OK)
        bs_inspect_fini(out);
    return rv;
}

void
bs_inspect_fini(bs_inspect *in)
{
    free(in->sets);
    in->sets = NULL;
    in->nsets = 0;
}
