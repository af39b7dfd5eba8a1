/*
 * fuzz_world.c - the deterministic two-node world of the fuzz harnesses
 * (see fuzz_world.h).
 */
#include "fuzz_world.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../replication/bundle.h"
#include "../../replication/collections.h"
#include "branchsync.pb-c.h"

/* ---- failing ---- */

void
bsf_die(const char *fmt, ...)
{
    va_list ap;

    fputs("bsfuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

int
bsf_ignored(const char *tag)
{
    const char *l = getenv("BSF_IGNORE");
    size_t n = strlen(tag);

    while (l != NULL && *l) {
        if (strncmp(l, tag, n) == 0 && (l[n] == ',' || l[n] == '\0'))
            return 1;
        l = strchr(l, ',');
        l = l ? l + 1 : NULL;
    }
    return 0;
}

/* ---- deterministic randomness (splitmix64; tests only) ---- */

static uint64_t rng_state = 0x6272616e63687379ull; /* "branchsy" */

static uint64_t
rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char *
rng_name(void)
{
    return "bsfuzz-splitmix64";
}

static uint32_t
rng_random(void)
{
    return (uint32_t)(rng_next() >> 32);
}

static void
rng_buf(void *const buf, const size_t n)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next();
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(p + i, &v, k);
    }
}

static randombytes_implementation rng_impl = {
    rng_name, rng_random, NULL, NULL, rng_buf, NULL,
};

void
bsf_init(void)
{
    static int done;

    if (done)
        return;
    done = 1;
    if (randombytes_set_implementation(&rng_impl) != 0)
        bsf_die("cannot install the deterministic random source");
    if (bs_crypto_init() != BS_OK)
        bsf_die("sodium_init failed");
}

/* ---- clock ---- */

static uint64_t clock_ms = BSF_T0_MS;

static uint64_t
clock_now(void *ctx)
{
    (void)ctx;
    return clock_ms++;
}

const bs_clock bsf_clock = {clock_now, NULL};

void
bsf_clock_set(int64_t offset_ms)
{
    clock_ms = (uint64_t)((int64_t)BSF_T0_MS + offset_ms);
}

/* ---- files ---- */

#define MAX_TMPDIRS 8
static char tmpdirs[MAX_TMPDIRS][512];
static int ntmpdirs;
static pid_t tmp_owner;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
rm_tmpdirs(void)
{
    if (getpid() != tmp_owner)
        return;
    for (int i = 0; i < ntmpdirs; i++)
        nftw(tmpdirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
bsf_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    struct stat st;

    if (ntmpdirs == MAX_TMPDIRS)
        bsf_die("too many temporary directories");
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
        access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    else if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(tmpdirs[ntmpdirs], sizeof tmpdirs[0], "%s/bsfuzz-%s-XXXXXX", base,
             tag);
    if (mkdtemp(tmpdirs[ntmpdirs]) == NULL)
        bsf_die("mkdtemp %s: %s", tmpdirs[ntmpdirs], strerror(errno));
    if (ntmpdirs++ == 0) {
        tmp_owner = getpid();
        atexit(rm_tmpdirs);
    }
    return tmpdirs[ntmpdirs - 1];
}

void
bsf_write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const uint8_t *b = p;

    if (fd < 0)
        bsf_die("%s: %s", path, strerror(errno));
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            bsf_die("write %s: %s", path, strerror(errno));
        b += k;
        n -= (size_t)k;
    }
    if (close(fd) != 0)
        bsf_die("close %s: %s", path, strerror(errno));
}

uint8_t *
bsf_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    size_t cap = 0, len = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (len == cap) {
            uint8_t *q;
            cap = cap ? cap * 2 : 65536;
            if ((q = realloc(p, cap + 1)) == NULL)
                bsf_die("out of memory reading %s", path);
            p = q;
        }
        size_t k = fread(p + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
    }
    if (ferror(f))
        bsf_die("read %s: %s", path, strerror(errno));
    fclose(f);
    *n = len;
    return p;
}

/* ---- the world (tests/lib/fixture.h) ---- */

/* Local writes in one transaction (one change set): json NULL deletes. */
static void
write_ops(bsf_node *x, const bst_op *ops, size_t n)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_write(x, ops, n, NULL, &err);

    if (rv != BS_OK)
        bsf_die("write at %s: %s", x->dir, bs_errmsg(&err, rv));
}

#define WRITE(x, ...)                                                          \
    do {                                                                       \
        static const bst_op ops_[] = {__VA_ARGS__};                            \
        write_ops((x), ops_, sizeof ops_ / sizeof ops_[0]);                    \
    } while (0)

/* The hub declares the rules of a collection (`collection NAME --policy`). */
static void
declare(bsf_node *hub, const char *coll, bs_policy policy)
{
    bs_collection c = {.declared = 1, .policy = policy, .set = BS_RULE_POLICY};
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(c.name, sizeof c.name, "%s", coll);
    if ((rv = bs_collections_declare(&hub->core, &c, NULL, &err)) != BS_OK)
        bsf_die("declare %s: %s", coll, bs_errmsg(&err, rv));
}

static uint8_t *
export_to(bsf_node *from, const char *peer, const char *path, size_t *n)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_export(from, peer, path, &err);

    if (rv != BS_OK)
        bsf_die("export %s -> %s: %s", from->dir, peer, bs_errmsg(&err, rv));
    return bst_read_file(path, n);
}

void
bsf_world_build(bsf_world *w, const char *tag)
{
    char path[600];
    bs_xstats st;
    bs_errbuf err = {{0}};
    bs_err rv;

    bsf_init();
    memset(w, 0, sizeof *w);
    snprintf(w->root, sizeof w->root, "%s", bsf_tmpdir(tag));
    bsf_clock_set(0);
    bst_node_new(&w->hub, w->root, "head", BS_ROLE_HUB, &bsf_clock);
    bst_node_new(&w->branch, w->root, "tallinn", BS_ROLE_BRANCH, &bsf_clock);
    bst_pair2(&w->hub, &w->branch);

    /* The hub founds the data: policies, then records. */
    declare(&w->hub, "prices", BS_POLICY_PRIORITY);
    declare(&w->hub, "notes", BS_POLICY_MANUAL);
    WRITE(&w->hub,
          {"items", "a",
           "{\"name\":\"bolt\",\"qty\":5,\"price\":0.25,\"ok\":true,"
           "\"note\":null}"},
          {"items", "b", "{\"name\":\"nut\",\"qty\":-3,\"ok\":false}"},
          {"prices", "p1", "{\"eur\":1.25,\"usd\":1.5}"},
          {"notes", "n1", "{\"text\":\"hello\"}"});
    snprintf(path, sizeof path, "%s/to-branch.bsx", w->root);
    w->to_branch = export_to(&w->hub, "tallinn", path, &w->to_branch_n);

    /* The branch joins. */
    if ((rv = bst_import(&w->branch, path, &st, &err)) != BS_OK)
        bsf_die("branch import: %s", bs_errmsg(&err, rv));

    /* Concurrent writes: three sets at the branch, one more at the hub. */
    WRITE(&w->branch, {"items", "a", "{\"qty\":7}"},
          {"items", "c", "{\"name\":\"washer\",\"qty\":100}"});
    WRITE(&w->branch, {"notes", "n1", "{\"text\":\"from tallinn\"}"},
          {"prices", "p1", "{\"eur\":1.3}"});
    WRITE(&w->branch, {"items", "b", NULL},
          {"items", "d",
           "{\"name\":\"\\u00f5un \\ud83c\\udf4e\",\"qty\":9007199254740993,"
           "\"w\":-0.0,\"e\":1e300,\"t\":\"tab\\tnl\\n\"}"});
    WRITE(&w->hub, {"items", "a", "{\"qty\":9}"},
          {"notes", "n1", "{\"text\":\"from head\"}"});
    snprintf(path, sizeof path, "%s/to-hub.bsx", w->root);
    w->to_hub = export_to(&w->branch, "head", path, &w->to_hub_n);
}

/* ---- fingerprints ---- */

void
bsf_print_take(bsf_node *x, bsf_print *p)
{
    bst_counts c;

    memset(p, 0, sizeof *p);
    bst_digest(x, p->digest, &p->records);
    bst_count(x, &c);
    p->log = c.sets;
    p->streams = c.streams;
    bst_fingerprint(x, p->all);
}

const char *
bsf_print_diff(const bsf_print *a, const bsf_print *b)
{
    if (memcmp(a->digest, b->digest, sizeof a->digest) != 0)
        return "the data digest changed";
    if (a->records != b->records)
        return "the number of live records changed";
    if (a->log != b->log)
        return "the number of change sets in the log changed";
    if (a->streams != b->streams)
        return "the number of streams changed";
    if (memcmp(a->all, b->all, sizeof a->all) != 0)
        return "some table of the store changed";
    return NULL;
}

/* ---- snapshots ---- */

static void
data_path(const bsf_node *x, const char *file, char *out, size_t n)
{
    snprintf(out, n, "%s/store/%s", x->dir, file);
}

void
bsf_snap_take(bsf_node *x, bsf_snap *s)
{
    char path[600];

    bst_node_free(x);
    data_path(x, "data.mdb", path, sizeof path);
    if ((s->data = bsf_read_file(path, &s->n)) == NULL)
        bsf_die("%s: %s", path, strerror(errno));
    bst_node_reopen(x);
}

void
bsf_snap_restore(bsf_node *x, const bsf_snap *s)
{
    char path[600];

    bst_node_free(x);
    data_path(x, "data.mdb", path, sizeof path);
    bsf_write_file(path, s->data, s->n);
    data_path(x, "lock.mdb", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        bsf_die("%s: %s", path, strerror(errno));
    bst_node_reopen(x);
}

/* ---- re-sealing exchange files ---- */

typedef struct obuf {
    uint8_t *p;
    size_t n, cap;
} obuf;

static void
ob_put(obuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *q;
        while (cap < b->n + n)
            cap *= 2;
        if ((q = realloc(b->p, cap)) == NULL)
            bsf_die("out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void
ob_frame(obuf *b, uint8_t type, const void *p, size_t n)
{
    uint8_t head[5];

    head[0] = type;
    bs_put_u32be(head + 1, (uint32_t)n);
    ob_put(b, head, 5);
    ob_put(b, p, n);
}

const uint8_t *
bsf_world_key(const bsf_world *w, const uint8_t *pk)
{
    if (w->hub.n && memcmp(pk, w->hub.n->meta.pk, BS_PK_LEN) == 0)
        return w->hub.core.sk;
    if (w->branch.n && memcmp(pk, w->branch.n->meta.pk, BS_PK_LEN) == 0)
        return w->branch.core.sk;
    if (memcmp(pk, bsf_own_pk(), BS_PK_LEN) == 0)
        return bsf_own_sk();
    return NULL;
}

/* A set re-signed by its origin, hash list recomputed; NULL if it does
 * not unpack or its origin's key is not ours. */
static uint8_t *
resign_set(const bsf_world *w, const uint8_t *b, size_t n, size_t *out_n)
{
    Bs__ChangeSet *cs = bs__change_set__unpack(NULL, n, b);
    Bs__SetHeader *h = NULL;
    ProtobufCBinaryData *hl = NULL, *saved, oh, osig;
    uint8_t(*hs)[BS_HASH_LEN] = NULL, *omit = NULL, *hdr = NULL, *out = NULL;
    uint8_t sig[BS_SIG_LEN];
    const uint8_t *sk;
    size_t hn, next = 0;

    if (cs == NULL)
        return NULL;
    h = bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
    if (h == NULL || h->origin.len != BS_PK_LEN ||
        (sk = bsf_world_key(w, h->origin.data)) == NULL)
        goto out;
    hs = calloc(h->n_change_hashes + 1, sizeof *hs);
    hl = calloc(h->n_change_hashes + 1, sizeof *hl);
    omit = calloc(h->n_change_hashes + 1, 1);
    if (hs == NULL || hl == NULL || omit == NULL)
        bsf_die("out of memory");
    for (size_t i = 0; i < cs->n_omitted; i++)
        if (cs->omitted[i] < h->n_change_hashes)
            omit[cs->omitted[i]] = 1;
    for (size_t i = 0; i < h->n_change_hashes; i++) {
        if (!omit[i] && next < cs->n_changes) {
            bs_hash(hs[i], cs->changes[next].data, cs->changes[next].len);
            next++;
        } else if (h->change_hashes[i].len == BS_HASH_LEN) {
            memcpy(hs[i], h->change_hashes[i].data, BS_HASH_LEN);
        }
        hl[i] = (ProtobufCBinaryData){BS_HASH_LEN, hs[i]};
    }
    saved = h->change_hashes;
    h->change_hashes = hl;
    hn = bs__set_header__get_packed_size(h);
    if ((hdr = malloc(hn + 1)) == NULL)
        bsf_die("out of memory");
    bs__set_header__pack(h, hdr);
    h->change_hashes = saved;
    bs_sign(sig, BS_SIG_CONTEXT, hdr, hn, sk);
    oh = cs->header;
    osig = cs->signature;
    cs->header = (ProtobufCBinaryData){hn, hdr};
    cs->signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    *out_n = bs__change_set__get_packed_size(cs);
    if ((out = malloc(*out_n + 1)) == NULL)
        bsf_die("out of memory");
    bs__change_set__pack(cs, out);
    cs->header = oh;
    cs->signature = osig;
out:
    free(hs);
    free(hl);
    free(omit);
    free(hdr);
    if (h != NULL)
        bs__set_header__free_unpacked(h, NULL);
    bs__change_set__free_unpacked(cs, NULL);
    return out;
}

uint8_t *
bsf_reseal(const bsf_world *w, const uint8_t *in, size_t n, unsigned flags,
           size_t *out_n)
{
    obuf b = {NULL, 0, 0};
    const uint8_t *sk = w->branch.core.sk;
    size_t pos = 8;
    int env_seen = 0;

    if (n < 8 || !(flags & (BSF_RESIGN_SETS | BSF_RESEAL_FILE))) {
        if ((b.p = malloc(n + 1)) == NULL)
            bsf_die("out of memory");
        if (n > 0)
            memcpy(b.p, in, n);
        *out_n = n;
        return b.p;
    }
    ob_put(&b, in, 8);
    while (pos < n) {
        const uint8_t *body = in + pos + 5;
        uint8_t type;
        uint32_t len;

        if (n - pos < 5 || (len = bs_get_u32be(in + pos + 1)) > n - pos - 5)
            break;
        type = in[pos];
        if (type == 3 && (flags & BSF_RESEAL_FILE)) {
            pos = n; /* the new trailer replaces it and what follows */
            break;
        }
        if (type == 1 && !env_seen) {
            bs_envelope e;
            const uint8_t *k;
            env_seen = 1;
            if (bs_envelope_decode(body, len, &e, NULL) == BS_OK &&
                (k = bsf_world_key(w, e.sender)) != NULL)
                sk = k;
            bs_envelope_fini(&e);
        }
        if (type == 2 && (flags & BSF_RESIGN_SETS)) {
            size_t rn;
            uint8_t *r = resign_set(w, body, len, &rn);
            if (r != NULL) {
                ob_frame(&b, 2, r, rn);
                free(r);
                pos += 5 + (size_t)len;
                continue;
            }
        }
        ob_frame(&b, type, body, len);
        pos += 5 + (size_t)len;
    }
    if (pos < n)
        ob_put(&b, in + pos, n - pos);
    if (flags & BSF_RESEAL_FILE) {
        uint8_t tr[BS_HASH_LEN + BS_SIG_LEN];
        bs_hash(tr, b.p, b.n);
        bs_sign(tr + BS_HASH_LEN, BS_FILE_CONTEXT, tr, BS_HASH_LEN, sk);
        ob_frame(&b, 3, tr, sizeof tr);
    }
    *out_n = b.n;
    return b.p;
}
