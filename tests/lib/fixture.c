/*
 * fixture.c - test nodes driven through the core API.
 */
#include "fixture.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../replication/digest.h"
#include "../../replication/json.h"
#include "../../replication/pairing.h"
#include "../../replication/setlog.h"
#include "../../replication/snapshot.h"
#include "branchsync.pb-c.h"
#include "../../replication/status.h"
#include "../../replication/streams.h"

void
bst_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "test fixture: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void
bst_ok(bs_err rv, const bs_errbuf *err, const char *what)
{
    if (rv != BS_OK)
        bst_die("%s: %s", what, bs_errmsg(err, rv));
}

void
bst_root(char *out, size_t n, const char *tag)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");

    snprintf(out, n, "%s/bs-%s-XXXXXX", base, tag);
    if (mkdtemp(out) == NULL)
        bst_die("mkdtemp %s: %s", out, strerror(errno));
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
bst_rmtree(const char *dir)
{
    if (dir != NULL && dir[0] != '\0')
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t
fake_now(void *ctx)
{
    bst_clock *c = ctx;
    uint64_t now = c->ms;

    c->ms += c->step;
    return now;
}

bs_clock
bst_clock_of(bst_clock *c)
{
    return (bs_clock){fake_now, c};
}

void
bst_node_reopen(bst_node *t)
{
    bs_clock clock = t->core.clock;
    bs_errbuf err = {{0}};

    bst_ok(bs_node_open(t->dir, 0, &t->n, &err), &err, t->dir);
    bst_ok(bs_node_core(t->n, 1, &t->core, &err), &err, "key");
    t->core.clock = clock;
}

void
bst_node_new(bst_node *t, const char *root, const char *name, int role,
             const bs_clock *clock)
{
    bs_node_init in = {name, role, NULL};
    bs_errbuf err = {{0}};

    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dir, sizeof t->dir, "%s/%s", root, name);
    bst_ok(bs_node_create(t->dir, &in, &err), &err, t->dir);
    t->core.clock = clock ? *clock : bs_clock_system;
    bst_node_reopen(t);
}

void
bst_node_free(bst_node *t)
{
    bs_node_close(t->n);
    t->n = NULL;
    t->core.store = NULL;
    t->core.sk = NULL;
}

bs_meta
bst_meta(bst_node *t)
{
    bs_errbuf err = {{0}};
    bs_txn *txn;
    bs_meta m;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_meta_load(txn, &m, &err), &err, "meta");
    bs_txn_abort(txn);
    return m;
}

void
bst_pair(bst_node *self, bst_node *other)
{
    bs_pair p = {other->name, "tcp://127.0.0.1:7400", {0}, "manual", ""};
    bs_errbuf err = {{0}};

    memcpy(p.pk, bst_meta(other).pk, BS_PK_LEN);
    bst_ok(bs_pairing_add(&self->core, &p, NULL, &err), &err, "pair");
}

void
bst_pair2(bst_node *a, bst_node *b)
{
    bst_pair(a, b);
    bst_pair(b, a);
}

static void
pair_as(bst_node *self, bst_node *other, int hub, int region)
{
    bs_pair p = {other->name, "tcp://127.0.0.1:7400", {0}, "manual", "", hub,
                 region};
    bs_errbuf err = {{0}};

    memcpy(p.pk, bst_meta(other).pk, BS_PK_LEN);
    bst_ok(bs_pairing_add(&self->core, &p, NULL, &err), &err, "pair");
}

void
bst_pair_region(bst_node *hub, bst_node *region)
{
    pair_as(hub, region, 0, 1);
}

void
bst_pair_hub(bst_node *self, bst_node *other)
{
    pair_as(self, other, 1, 0);
}

void
bst_member_via(bst_node *hub, bst_node *branch, bst_node *region)
{
    bs_errbuf err = {{0}};

    bst_ok(bs_pairing_member_add(&hub->core, branch->name, bst_meta(branch).pk,
                                 region->name, &err),
           &err, "member add");
}

bs_err
bst_write(bst_node *t, const bst_op *ops, size_t n, bs_write_stats *st,
          bs_errbuf *err)
{
    bs_write *w = calloc(n + 1, sizeof *w);
    bs_arena a;
    bs_err rv = BS_OK;

    if (w == NULL)
        return BS_ENOMEM;
    bs_arena_init(&a);
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        const char *jid;
        w[i].coll = ops[i].coll;
        w[i].id = ops[i].id;
        w[i].deleted = ops[i].json == NULL;
        if (!w[i].deleted)
            rv = bs_json_fields(ops[i].json, strlen(ops[i].json), &a, &jid,
                                &w[i].fields, &w[i].nfields, err);
    }
    if (rv == BS_OK)
        rv = bs_records_write(&t->core, w, n, st, err);
    bs_arena_fini(&a);
    free(w);
    return rv;
}

bs_err
bst_put_many(bst_node *t, const char *coll, const char *const *ids,
             const char *const *json, size_t n, bs_errbuf *err)
{
    bst_op *ops = calloc(n + 1, sizeof *ops);
    bs_err rv;

    if (ops == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ops[i] = (bst_op){coll, ids[i], json[i]};
    rv = bst_write(t, ops, n, NULL, err);
    free(ops);
    return rv;
}

bs_err
bst_put(bst_node *t, const char *coll, const char *id, const char *json,
        bs_errbuf *err)
{
    return bst_put_many(t, coll, &id, &json, 1, err);
}

bs_err
bst_del(bst_node *t, const char *coll, const char *id, bs_errbuf *err)
{
    bs_write w = {coll, id, 1, NULL, 0};

    return bs_records_write(&t->core, &w, 1, NULL, err);
}

char *
bst_get(bst_node *t, const char *coll, const char *id)
{
    bs_errbuf err = {{0}};
    char *s = NULL;
    bs_record r;
    bs_arena a;
    bs_txn *txn;
    bs_err rv;

    bs_arena_init(&a);
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    rv = bs_records_get(txn, coll, id, &a, &r, &err);
    if (rv == BS_OK && (s = bs_json_record(id, strlen(id), &r)) == NULL)
        rv = BS_ENOMEM;
    bs_txn_abort(txn);
    bs_arena_fini(&a);
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        bst_die("get %s/%s: %s", coll, id, bs_errmsg(&err, rv));
    return s;
}

bs_err
bst_export(bst_node *from, const char *peer, const char *path, bs_errbuf *err)
{
    bs_xstats st;

    return bs_bundle_export(from->n->store, from->core.sk, peer, path,
                            bs_core_now(&from->core), from->core.retention_ms,
                            &st, err);
}

bs_err
bst_import(bst_node *to, const char *path, bs_xstats *st, bs_errbuf *err)
{
    bs_xstats mine;

    return bs_bundle_import(to->n->store, to->core.sk, path, to->core.clock,
                            to->core.max_skew_ms, to->core.retention_ms,
                            st ? st : &mine, err);
}

bs_err
bst_carry(bst_node *from, bst_node *to, bs_xstats *st, bs_errbuf *err)
{
    char path[512];
    bs_err rv;

    snprintf(path, sizeof path, "%s.to-%s.bsx", from->dir, to->name);
    if ((rv = bst_export(from, to->name, path, err)) == BS_OK)
        rv = bst_import(to, path, st, err);
    unlink(path);
    return rv;
}

/* Move every message one session has for the other; 1 if any moved. */
static int
pass_messages(bs_session *from, bs_session *to, int from_a, bst_tap tap,
              void *ctx)
{
    uint8_t *m;
    size_t n;
    int moved = 0;

    while (bs_session_output(from, &m, &n) == BS_OK) {
        moved = 1;
        if (tap == NULL || tap(ctx, from_a, &m, &n)) {
            bs_err rv = bs_session_input(to, m, n);
            (void)rv; /* failures show in the session's state */
        }
        free(m);
    }
    return moved;
}

static int
ended(bs_session *s)
{
    bs_session_state st = bs_session_state_of(s);

    return st == BS_SESSION_COMPLETE || st == BS_SESSION_FAILED;
}

bs_err
bst_sync(bst_node *a, bst_node *b, bst_tap tap, void *ctx, bst_sync_result *r)
{
    bs_session_cfg ca, cb;
    bs_session *sa = NULL, *sb = NULL;
    bs_meta ma = bst_meta(a), mb = bst_meta(b);
    bs_err rv;

    memset(r, 0, sizeof *r);
    memset(&ca, 0, sizeof ca);
    ca.store = a->n->store;
    ca.sk = a->core.sk;
    ca.clock = a->core.clock;
    ca.max_skew_ms = a->core.max_skew_ms;
    ca.retention_ms = a->core.retention_ms;
    ca.initiator = 1;
    ca.peer = b->name;
    ca.authenticated = mb.pk;
    cb = ca;
    cb.store = b->n->store;
    cb.sk = b->core.sk;
    cb.clock = b->core.clock;
    cb.max_skew_ms = b->core.max_skew_ms;
    cb.retention_ms = b->core.retention_ms;
    cb.initiator = 0;
    cb.peer = NULL;
    cb.authenticated = ma.pk;
    if ((rv = bs_session_new(&ca, &sa)) != BS_OK ||
        (rv = bs_session_new(&cb, &sb)) != BS_OK)
        bst_die("session: %s", bs_strerror(rv));
    rv = bs_session_start(sa);
    /* Bounded: each round moves at least one message or ends. */
    for (int round = 0; round < 1000000; round++) {
        int moved = pass_messages(sa, sb, 1, tap, ctx);
        moved |= pass_messages(sb, sa, 0, tap, ctx);
        if (!moved || (ended(sa) && ended(sb)))
            break;
    }
    r->a = bs_session_state_of(sa);
    r->b = bs_session_state_of(sb);
    r->sa = *bs_session_stats_of(sa);
    r->sb = *bs_session_stats_of(sb);
    r->err_a = bs_session_errcode(sa);
    r->err_b = bs_session_errcode(sb);
    snprintf(r->msg_a, sizeof r->msg_a, "%s", bs_session_error(sa));
    snprintf(r->msg_b, sizeof r->msg_b, "%s", bs_session_error(sb));
    bs_session_free(sa);
    bs_session_free(sb);
    if (rv == BS_OK &&
        (r->a != BS_SESSION_COMPLETE || r->b != BS_SESSION_COMPLETE))
        rv = r->err_a ? r->err_a : r->err_b ? r->err_b : BS_EINTERNAL;
    return rv;
}

void
bst_digest(bst_node *t, uint8_t out[BS_HASH_LEN], uint64_t *nrec)
{
    bs_errbuf err = {{0}};
    uint64_t n;
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_digest(txn, NULL, 0, out, nrec ? nrec : &n, &err), &err,
           "digest");
    bs_txn_abort(txn);
}

void
bst_fingerprint(bst_node *t, uint8_t out[BS_HASH_LEN])
{
    bs_errbuf err = {{0}};
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_store_fingerprint(txn, out), NULL, "fingerprint");
    bs_txn_abort(txn);
}

void
bst_count(bst_node *t, bst_counts *c)
{
    static const bs_held_kind kinds[] = {BS_HELD_WAITING, BS_HELD_EVIDENCE,
                                         BS_HELD_REFUSED};
    bs_status_opts o = {bs_core_now(&t->core), 0, 1};
    bs_errbuf err = {{0}};
    uint8_t digest[BS_HASH_LEN];
    bs_streamtab tab;
    bs_status st;
    bs_meta m;
    bs_txn *txn;

    memset(c, 0, sizeof *c);
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_meta_load(txn, &m, &err), &err, "meta");
    bst_ok(bs_digest(txn, NULL, 0, digest, &c->live, &err), &err, "digest");
    bst_ok(bs_status_read(txn, &m, &o, &st, &err), &err, "status");
    for (size_t i = 0; i < st.ncolls; i++)
        c->records += st.colls[i].records + st.colls[i].deleted;
    c->sets = st.change_sets;
    c->conflicts = st.conflicts_total;
    c->open = st.conflicts_open;
    bs_status_fini(&st);
    bst_ok(bs_streams_load(txn, &tab), NULL, "streams");
    c->streams = tab.n;
    bs_streams_fini(&tab);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        uint64_t n;
        bst_ok(bs_held_count(txn, kinds[k], 0, 0, &n), NULL, "held");
        c->held += n;
    }
    bs_txn_abort(txn);
}

uint64_t
bst_conflicts_of(bst_node *t, int all, const char *coll, const char *id,
                 const char *field, char cid[BS_CONFLICT_ID_LEN + 1])
{
    bs_errbuf err = {{0}};
    const bs_conflict *c;
    bs_conflict_iter *it;
    uint64_t n = 0;
    bs_txn *txn;
    bs_err rv;

    if (cid != NULL)
        cid[0] = '\0';
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_conflict_iter_open(txn, all, &it), NULL, "conflicts");
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        if (strcmp(c->coll, coll) != 0 || strcmp(c->field, field) != 0 ||
            (id != NULL && strcmp(c->rid, id) != 0))
            continue;
        if (n++ == 0 && cid != NULL)
            snprintf(cid, BS_CONFLICT_ID_LEN + 1, "%s", c->id);
    }
    if (rv != BS_ENOTFOUND)
        bst_die("walking the conflicts: %s", bs_strerror(rv));
    bs_conflict_iter_close(it);
    bs_txn_abort(txn);
    return n;
}

void
bst_conflict(bst_node *t, const char *cid, bs_conflict *c)
{
    bs_errbuf err = {{0}};
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_conflict_get(txn, cid, c), NULL, cid);
    bs_txn_abort(txn);
}

size_t
bst_last_change_byte(const uint8_t *set, size_t n)
{
    size_t i = 0, at = 0;

    while (i < n) {
        uint8_t tag = set[i++];
        uint64_t len = 0;
        int shift = 0;

        if ((tag & 7) != 2)
            abort(); /* a ChangeSet has only bytes fields */
        while (i < n && (set[i] & 0x80))
            len |= (uint64_t)(set[i++] & 0x7f) << shift, shift += 7;
        if (i >= n)
            abort();
        len |= (uint64_t)set[i++] << shift;
        i += len;
        if (tag == 0x1a)
            at = i - 1;
    }
    if (at == 0)
        abort();
    return at;
}

int
bst_frames_split(const uint8_t *p, size_t n, bst_frames *f)
{
    size_t pos = 8, cap = 0;
    int ok = 1, trailer = 0;

    memset(f, 0, sizeof *f);
    if (n < 8 || memcmp(p, BS_FILE_MAGIC, 4) != 0)
        return 0;
    while (pos < n && !trailer) {
        uint32_t len;
        bs_slice body;

        if (n - pos < 5 || (len = bs_get_u32be(p + pos + 1)) > n - pos - 5)
            break;
        body = (bs_slice){p + pos + 5, len};
        if (p[pos] == 1 && pos == 8) {
            f->env = body;
        } else if (p[pos] == 2 && pos > 8) {
            if (f->nsets == cap) {
                bs_slice *v;
                cap = cap ? 2 * cap : 16;
                if ((v = realloc(f->sets, cap * sizeof *v)) == NULL)
                    bst_die("out of memory");
                f->sets = v;
            }
            f->sets[f->nsets++] = body;
        } else if (p[pos] == 4 && pos > 8) {
            bs_slice *v = realloc(f->snaps, (f->nsnaps + 1) * sizeof *v);
            if (v == NULL)
                bst_die("out of memory");
            f->snaps = v;
            f->snaps[f->nsnaps++] = body;
        } else if (p[pos] == 5 && pos > 8) {
            bs_slice *v = realloc(f->batches, (f->nbatches + 1) * sizeof *v);
            if (v == NULL)
                bst_die("out of memory");
            f->batches = v;
            f->batches[f->nbatches++] = body;
        } else if (p[pos] == 3) {
            trailer = 1;
        } else {
            ok = 0;
        }
        pos += 5 + (size_t)len;
    }
    return ok && trailer && pos == n && f->env.p != NULL;
}

static void
put_frame(FILE *f, uint8_t type, const uint8_t *p, size_t n, bs_hash_state *h)
{
    uint8_t head5[5];

    head5[0] = type;
    bs_put_u32be(head5 + 1, (uint32_t)n);
    if (fwrite(head5, 1, 5, f) != 5 || fwrite(p, 1, n, f) != n)
        bst_die("cannot write the seed file");
    if (h != NULL) {
        bs_hash_update(h, head5, 5);
        bs_hash_update(h, p, n);
    }
}

/* Batch b (SnapBatch bytes) without its last body, signed again: *out
 * malloc'd. */
static size_t
cut_last(bs_slice b, const uint8_t *sk, uint8_t **out)
{
    Bs__SnapBatch *m = bs__snap_batch__unpack(NULL, b.n, b.p);
    Bs__SnapBatchHeader *h;
    Bs__SnapBody *last;
    size_t n;

    if (m == NULL || m->n_bodies < 2 ||
        (h = bs__snap_batch_header__unpack(NULL, m->header.len,
                                           m->header.data)) == NULL)
        bst_die("not a batch of snapshots");
    last = bs__snap_body__unpack(NULL, m->bodies[m->n_bodies - 1].len,
                                 m->bodies[m->n_bodies - 1].data);
    if (last == NULL || !last->seed)
        bst_die("the seed does not end with its marker");
    bs__snap_body__free_unpacked(last, NULL);
    free(m->bodies[--m->n_bodies].data);
    free(h->hashes[--h->n_hashes].data);
    free(m->header.data);
    m->header.len = bs__snap_batch_header__get_packed_size(h);
    if ((m->header.data = malloc(m->header.len)) == NULL)
        bst_die("out of memory");
    bs__snap_batch_header__pack(h, m->header.data);
    bs_sign(m->signature.data, BS_SNAPBATCH_CONTEXT, m->header.data,
            m->header.len, sk);
    if ((*out = malloc(bs__snap_batch__get_packed_size(m))) == NULL)
        bst_die("out of memory");
    n = bs__snap_batch__pack(m, *out);
    bs__snap_batch_header__free_unpacked(h, NULL);
    bs__snap_batch__free_unpacked(m, NULL);
    return n;
}

void
bst_seed_drop_marker(const char *path, const uint8_t *sk)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], head8[8], *p, *cut;
    size_t len, cn;
    bs_hash_state h;
    bst_frames fr;
    FILE *f;

    p = bst_read_file(path, &len);
    if (!bst_frames_split(p, len, &fr) || fr.nbatches == 0)
        bst_die("%s: not a seed", path);
    if ((f = fopen(path, "wb")) == NULL)
        bst_die("%s: %s", path, strerror(errno));
    bs_hash_init(&h);
    memcpy(head8, BS_FILE_MAGIC, 4);
    bs_put_u32be(head8 + 4, 1);
    if (fwrite(head8, 1, 8, f) != 8)
        bst_die("cannot write the seed file");
    bs_hash_update(&h, head8, 8);
    put_frame(f, 1, fr.env.p, fr.env.n, &h);
    for (size_t i = 0; i < fr.nsets; i++)
        put_frame(f, 2, fr.sets[i].p, fr.sets[i].n, &h);
    for (size_t i = 0; i + 1 < fr.nbatches; i++)
        put_frame(f, 5, fr.batches[i].p, fr.batches[i].n, &h);
    cn = cut_last(fr.batches[fr.nbatches - 1], sk, &cut);
    put_frame(f, 5, cut, cn, &h);
    free(cut);
    bs_hash_final(&h, tr);
    bs_sign(tr + BS_HASH_LEN, BS_FILE_CONTEXT, tr, BS_HASH_LEN, sk);
    put_frame(f, 3, tr, sizeof tr, NULL);
    if (fclose(f) != 0)
        bst_die("cannot write the seed file");
    bst_frames_fini(&fr);
    free(p);
}

void
bst_frames_fini(bst_frames *f)
{
    free(f->sets);
    free(f->snaps);
    free(f->batches);
    memset(f, 0, sizeof *f);
}

void
bst_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        bst_die("cannot write %s", path);
}

uint8_t *
bst_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0)
        bst_die("cannot read %s", path);
    rewind(f);
    if ((p = malloc((size_t)len + 1)) == NULL ||
        fread(p, 1, (size_t)len, f) != (size_t)len)
        bst_die("cannot read %s", path);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* ==== additions for the per-module tests (wp-tnew) ==================== */

#include <dirent.h>
#include <fcntl.h>

#include "../../replication/streams.h"

static void
copy_file_mode(const char *from, const char *to, mode_t mode)
{
    char buf[1 << 16];
    ssize_t n;
    int in = open(from, O_RDONLY | O_CLOEXEC), out;

    if (in < 0)
        bst_die("open %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        bst_die("create %s: %s", to, strerror(errno));
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            bst_die("write %s: %s", to, strerror(errno));
    if (n < 0 || fchmod(out, mode) != 0)
        bst_die("copy %s: %s", from, strerror(errno));
    close(in);
    close(out);
}

void
bst_copy_tree(const char *from, const char *to)
{
    struct stat st;
    struct dirent *e;
    DIR *d;

    if (stat(from, &st) != 0 || !S_ISDIR(st.st_mode))
        bst_die("%s is not a directory", from);
    if (mkdir(to, st.st_mode & 07777) != 0 && errno != EEXIST)
        bst_die("mkdir %s: %s", to, strerror(errno));
    if ((d = opendir(from)) == NULL)
        bst_die("opendir %s: %s", from, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char a[1024], b[1024];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        if (lstat(a, &st) != 0)
            bst_die("stat %s: %s", a, strerror(errno));
        if (S_ISDIR(st.st_mode))
            bst_copy_tree(a, b);
        else if (S_ISREG(st.st_mode))
            copy_file_mode(a, b, st.st_mode & 07777);
    }
    closedir(d);
    if (chmod(to, (stat(from, &st) == 0 ? st.st_mode : 0700) & 07777) != 0)
        bst_die("chmod %s: %s", to, strerror(errno));
}

void
bst_node_clone(bst_node *src, const char *dir, bst_node *dst)
{
    bst_node_free(src);
    bst_copy_tree(src->dir, dir);
    bst_node_reopen(src);
    memset(dst, 0, sizeof *dst);
    snprintf(dst->name, sizeof dst->name, "%s", src->name);
    snprintf(dst->dir, sizeof dst->dir, "%s", dir);
    dst->core.clock = src->core.clock;
    bst_node_reopen(dst);
}

int
bst_stream(bst_node *t, const uint8_t *origin, const uint8_t *inc,
           bs_stream *out)
{
    bs_errbuf err = {{0}};
    bs_streamtab tab;
    bs_stream *s;
    bs_txn *txn;
    int found;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_streams_load(txn, &tab), NULL, "streams");
    if ((found = (s = bs_streams_find(&tab, origin, inc)) != NULL))
        *out = *s;
    bs_streams_fini(&tab);
    bs_txn_abort(txn);
    return found;
}

#if defined(__SANITIZE_ADDRESS__)
#define BST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BST_ASAN 1
#endif
#endif
#ifdef BST_ASAN
#include <sanitizer/lsan_interface.h>
#endif

void
bst_leak_check(const char *what)
{
#ifdef BST_ASAN
    if (__lsan_do_recoverable_leak_check() != 0)
        bst_die("%s: memory leaked (see the LSan report)", what);
#else
    (void)what;
#endif
}

typedef struct quarantine_arg {
    const uint8_t *pk;
    const char *note;
} quarantine_arg;

static bs_err
quarantine_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    const quarantine_arg *q = arg;
    bs_streamtab tab;
    bs_err rv;

    (void)err;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (size_t i = 0; i < tab.n && rv == BS_OK; i++)
        if (memcmp(tab.v[i].key, q->pk, BS_PK_LEN) == 0) {
            tab.v[i].flags |= BS_STREAM_QUARANTINED;
            snprintf(tab.v[i].note, sizeof tab.v[i].note, "%s", q->note);
            rv = bs_streams_save(t, &tab.v[i]);
        }
    bs_streams_fini(&tab);
    return rv;
}

void
bst_quarantine(bst_node *t, const uint8_t *pk, const char *note)
{
    quarantine_arg q = {pk, note};
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(t->n->store, quarantine_txn, &q, &err), &err,
           "quarantine");
}
