/*
 * fixture.h - nodes for tests, made and driven through the core API, the
 * way the CLI and the daemon drive them: node directories in a temporary
 * root, pairing (pairing.h), writes (records.h), exchanges by file
 * (bundle.h) and by network session with the two state machines wired
 * together in memory (session.h), digests and store fingerprints.
 *
 * Shared by the unit tests, the convergence simulation and the fuzz
 * world, so that none of them copies a domain operation.  Functions that
 * can fail for the product's reasons return a bs_err with err filled; the
 * rest abort on a broken fixture (bst_die).  Time is injected: every node
 * has a bs_clock (the system clock unless the test gives one).
 */
#ifndef BS_TEST_FIXTURE_H
#define BS_TEST_FIXTURE_H

#include "../../node/node.h"
#include "../../replication/bundle.h"
#include "../../replication/conflict.h"
#include "../../replication/records.h"
#include "../../replication/session.h"

/* Abort with a message (a fixture invariant failed). */
void bst_die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
/* bst_die unless rv is BS_OK, naming what and err. */
void bst_ok(bs_err rv, const bs_errbuf *err, const char *what);

/* A fresh temporary directory (tmpfs when there is one) named after tag;
 * out holds at least 128 bytes.  bst_rmtree removes a tree. */
void bst_root(char *out, size_t n, const char *tag);
void bst_rmtree(const char *dir);

typedef struct bst_node {
    char dir[256];
    char name[BS_NODE_NAME_MAX + 1];
    bs_node *n;
    bs_core core; /* with the secret key and the node's clock */
} bst_node;

/* A fake wall clock for bst_node_new: it reads ms, then adds step (0: a
 * clock that stands still until the test moves it). */
typedef struct bst_clock {
    uint64_t ms, step;
} bst_clock;

/* The bs_clock reading c (borrowed: c must outlive its users). */
bs_clock bst_clock_of(bst_clock *c);

/* Create node `name` (role BS_ROLE_HUB or BS_ROLE_BRANCH) in root and open
 * it; clock may be NULL for the system clock (copied). */
void bst_node_new(bst_node *t, const char *root, const char *name, int role,
                  const bs_clock *clock);
/* Close (bst_node_reopen opens again, e.g. after a restore). */
void bst_node_free(bst_node *t);
void bst_node_reopen(bst_node *t);
/* The node's metadata as it is now (bs_node.meta is as opened). */
bs_meta bst_meta(bst_node *t);

/* Pair self with other under other's name, as `peer add` does (at the hub
 * this introduces other as a member). */
void bst_pair(bst_node *self, bst_node *other);
/* Pair both ways. */
void bst_pair2(bst_node *a, bst_node *b);

/* Regional hubs (docs/design.md "Regional hubs"): at the hub, pair with
 * region as `peer add NAME ENDPOINT ID --region` does; pair self with
 * other as `peer add … --hub` does (a branch naming its regional hub); at
 * the hub, introduce branch as a member relayed by region without pairing
 * (`member add NAME ID --via REGION`).  Each aborts on failure. */
void bst_pair_region(bst_node *hub, bst_node *region);
void bst_pair_hub(bst_node *self, bst_node *other);
void bst_member_via(bst_node *hub, bst_node *branch, bst_node *region);

/* Upsert json's fields into coll/id (one transaction, one set). */
BS_MUST_CHECK bs_err bst_put(bst_node *t, const char *coll, const char *id,
                             const char *json, bs_errbuf *err);
/* Upsert n records in one transaction (one change set). */
BS_MUST_CHECK bs_err bst_put_many(bst_node *t, const char *coll,
                                  const char *const *ids,
                                  const char *const *json, size_t n,
                                  bs_errbuf *err);
BS_MUST_CHECK bs_err bst_del(bst_node *t, const char *coll, const char *id,
                             bs_errbuf *err);

/* One write of a batch, as `put` and `del` take it: json NULL deletes. */
typedef struct bst_op {
    const char *coll, *id, *json;
} bst_op;

/* Apply ops in order in one transaction (one change set), all or nothing
 * (bs_records_write); *st (may be NULL) gets its counts on BS_OK. */
BS_MUST_CHECK bs_err bst_write(bst_node *t, const bst_op *ops, size_t n,
                               bs_write_stats *st, bs_errbuf *err);
/* The record as `get` prints it (malloc'd), or NULL when not found. */
char *bst_get(bst_node *t, const char *coll, const char *id);

/* Export what peer `peer` lacks to path / import path. */
BS_MUST_CHECK bs_err bst_export(bst_node *from, const char *peer,
                                const char *path, bs_errbuf *err);
BS_MUST_CHECK bs_err bst_import(bst_node *to, const char *path, bs_xstats *st,
                                bs_errbuf *err);
/* Export from `from` to `to` through a file under root and import it. */
BS_MUST_CHECK bs_err bst_carry(bst_node *from, bst_node *to, bs_xstats *st,
                               bs_errbuf *err);

/* The outcome of one network exchange run in memory. */
typedef struct bst_sync_result {
    bs_session_state a, b;   /* final states */
    bs_session_stats sa, sb; /* each side's counters */
    bs_err err_a, err_b;     /* why a side failed */
    char msg_a[BS_ERRMSG_LEN], msg_b[BS_ERRMSG_LEN];
} bst_sync_result;

/*
 * Run one network exchange: a initiates with its peer `b->name`, b
 * responds; messages pass between the two sessions in memory (optionally
 * through `tap`, which may drop or alter them: return 0 to drop) until
 * both sides stop.  BS_OK when both completed.
 */
typedef int (*bst_tap)(void *ctx, int from_a, uint8_t **msg, size_t *n);
BS_MUST_CHECK bs_err bst_sync(bst_node *a, bst_node *b, bst_tap tap, void *ctx,
                              bst_sync_result *r);

/* Digest of the live user data. */
void bst_digest(bst_node *t, uint8_t out[BS_HASH_LEN], uint64_t *nrec);

/* A hash of every key and value of every table of the store, and of the
 * live data: equal exactly when nothing was written. */
void bst_fingerprint(bst_node *t, uint8_t out[BS_HASH_LEN]);

/* What a node stores, counted through the core API. */
typedef struct bst_counts {
    uint64_t live;      /* live user records (as the digest counts them) */
    uint64_t records;   /* stored user records, live or deleted */
    uint64_t sets;      /* change sets in the log (bs_setlog_count) */
    uint64_t streams;   /* streams known (bs_streams_load) */
    uint64_t held;      /* held-table entries of every kind (setlog.h) */
    uint64_t conflicts; /* conflicts recorded, open or settled */
    uint64_t open;      /* open conflicts */
} bst_counts;

void bst_count(bst_node *t, bst_counts *c);

/*
 * The conflicts (open ones, or all) recorded for coll/id/field, walking
 * the register (bs_conflict_iter_*); id NULL matches any record.  Returns
 * how many; cid (may be NULL) gets the first one's ID ("" when none).
 */
uint64_t bst_conflicts_of(bst_node *t, int all, const char *coll,
                          const char *id, const char *field,
                          char cid[BS_CONFLICT_ID_LEN + 1]);
/* Conflict cid into *c (release with bs_conflict_fini); aborts if absent. */
void bst_conflict(bst_node *t, const char *cid, bs_conflict *c);

/*
 * Exchange file bytes (bundle.h layout) split into frames: the envelope's
 * body, each set's and each record snapshot's, borrowed from p.  Frames past a
 * broken one are ignored.  Returns 1 when the whole file frames correctly (an
 * envelope first, a trailer last), else 0 with what framed.  bst_frames_fini
 * frees the array.
 */
typedef struct bst_frames {
    bs_slice env;
    bs_slice *sets; /* malloc'd */
    size_t nsets;
    bs_slice *snaps; /* record snapshots (type 4, after the sets; malloc'd) */
    size_t nsnaps;
    bs_slice *batches; /* batches of snapshots (type 5, a seed's; malloc'd) */
    size_t nbatches;
} bst_frames;

int bst_frames_split(const uint8_t *p, size_t n, bst_frames *f);
void bst_frames_fini(bst_frames *f);
/*
 * The seed file at path (a hub's `export --seed`) cut before its seed
 * marker, as a seed that stopped there: its last batch of snapshots
 * without its last body (the marker), signed again with sk (the hub's
 * secret key), the file's trailer too.  Aborts if the file is not a seed
 * ending with a marker.
 */
void bst_seed_drop_marker(const char *path, const uint8_t *sk);

/* The offset of the last byte of the last change (ChangeSet field 3) in
 * an encoded set: where a flipped byte breaks a change, not the summary
 * that follows the changes (protocol.md 2.10).  Aborts when it has none. */
size_t bst_last_change_byte(const uint8_t *set, size_t n);

/* Write / read a whole file (abort on failure); read returns malloc'd. */
void bst_write_file(const char *path, const void *p, size_t n);
uint8_t *bst_read_file(const char *path, size_t *n);

#endif

/* ==== additions for the per-module tests (wp-tnew) ==================== */

/* Copy the directory tree `from` to `to` (created), keeping the permission
 * bits of every directory and file. */
void bst_copy_tree(const char *from, const char *to);

/* A byte-for-byte copy of src in directory `dir`: src is closed, its
 * directory copied and reopened, and the copy opened as dst with src's
 * clock.  Both are the same node (keys, store); a test can then give one
 * input to each through two paths and compare. */
void bst_node_clone(bst_node *src, const char *dir, bst_node *dst);

/* The entry of stream (origin, inc) in t's stream table; 0 when t holds no
 * such stream. */
int bst_stream(bst_node *t, const uint8_t *origin, const uint8_t *inc,
               bs_stream *out);

/* Mark every stream of origin pk in t quarantined with `note`, as the
 * admission of a fork would (aborts on failure). */
void bst_quarantine(bst_node *t, const uint8_t *pk, const char *note);

/* Under ASan: run LeakSanitizer now and abort, naming `what`, when memory
 * leaked (Criterion does not see LSan's exit status of a test's process);
 * a no-op otherwise.  For suite teardowns. */
void bst_leak_check(const char *what);
