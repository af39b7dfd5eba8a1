/*
 * fuzz_session.c - a responder session at the hub of the deterministic
 * world (fuzz_world.h) fed untrusted messages, as the daemon feeds what the
 * transport received from the branch it authenticated (a paired branch, or
 * whoever stole its key).
 *
 * Input: u8 k (number of messages), k x u16be lengths, then the messages'
 * bytes back to back (a length beyond the end takes what is left).  After
 * each message every queued output is taken, as the daemon does.  The
 * corpus generator records real initiator sessions in this format.
 *
 * Invariants: no crash or leak; every output is a known message type; the
 * hub's identity (meta: name, role, key, infobase, incarnation) never
 * changes.  The store is put back from a snapshot after inputs that
 * changed it.
 */
#include <stdio.h>
#include <string.h>

#include "../../replication/session.h"
#include "fuzz_world.h"

static bsf_world w;
static bsf_snap tmpl;
static bsf_print tmpl_print;
static bs_meta tmpl_meta;
static int ready;
static unsigned long n_inputs, n_streaming, n_complete;

static void
stats(void)
{
    fprintf(stderr,
            "fuzz_session: %lu inputs, %lu got past hello, %lu complete\n",
            n_inputs, n_streaming, n_complete);
}

static bs_meta
meta_now(void)
{
    bs_errbuf err = {{0}};
    bs_meta m;
    bs_txn *t;

    if (bs_store_read(w.hub.n->store, &t, &err) != BS_OK ||
        bs_meta_load(t, &m, &err) != BS_OK)
        bsf_die("reading the hub's metadata: %s", err.msg);
    bs_txn_abort(t);
    return m;
}

static void
setup(void)
{
    bsf_world_build(&w, "session");
    bsf_snap_take(&w.hub, &tmpl);
    bsf_print_take(&w.hub, &tmpl_print);
    tmpl_meta = meta_now();
    ready = 1;
    if (getenv("BSF_STATS"))
        atexit(stats);
}

static void
drain(bs_session *s)
{
    uint8_t *m;
    size_t n;

    while (bs_session_output(s, &m, &n) == BS_OK) {
        if (n == 0 || m[0] < BS_MSG_HELLO || m[0] > BS_MSG_CREDIT)
            bsf_die("session produced a message of type %d",
                    n ? (int)m[0] : -1);
        free(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_session_cfg cfg;
    bs_session *s;
    bsf_print p;
    bs_meta m;
    size_t k, pos;
    int streaming = 0;

    if (!ready)
        setup();
    if (size < 1)
        return 0;
    n_inputs++;
    k = data[0];
    if (size < 1 + 2 * k)
        k = (size - 1) / 2;
    pos = 1 + 2 * k;
    bsf_clock_set(3600000);
    memset(&cfg, 0, sizeof cfg);
    cfg.store = w.hub.n->store;
    cfg.sk = w.hub.core.sk;
    cfg.clock = bsf_clock;
    cfg.max_skew_ms = BSF_SKEW_MS;
    cfg.authenticated = w.branch.n->meta.pk; /* what CURVE vouched for */
    if (bs_session_new(&cfg, &s) != BS_OK)
        bsf_die("bs_session_new");
    for (size_t i = 0; i < k; i++) {
        size_t len = (size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i];
        uint8_t *msg;

        if (len > size - pos)
            len = size - pos;
        /* An exact copy: reading past the message is an ASan report. */
        if ((msg = malloc(len ? len : 1)) == NULL)
            bsf_die("out of memory");
        memcpy(msg, data + pos, len);
        pos += len;
        bsf_ignore(bs_session_input(s, msg, len));
        free(msg);
        drain(s);
        if (bs_session_state_of(s) == BS_SESSION_STREAMING)
            streaming = 1;
    }
    n_streaming += streaming;
    n_complete += bs_session_state_of(s) == BS_SESSION_COMPLETE;
    bs_session_free(s);
    m = meta_now();
    if (strcmp(m.name, tmpl_meta.name) != 0 || m.role != tmpl_meta.role ||
        m.joined != tmpl_meta.joined ||
        memcmp(m.pk, tmpl_meta.pk, BS_PK_LEN) != 0 ||
        memcmp(m.hub, tmpl_meta.hub, BS_PK_LEN) != 0 ||
        memcmp(m.infobase, tmpl_meta.infobase, BS_INFOBASE_LEN) != 0 ||
        memcmp(m.inc, tmpl_meta.inc, BS_INC_LEN) != 0)
        bsf_die("a session changed the hub's identity");
    bsf_print_take(&w.hub, &p);
    if (bsf_print_diff(&tmpl_print, &p) != NULL) {
        bsf_check_store(w.hub.n->store);
        bsf_snap_restore(&w.hub, &tmpl);
    }
    return 0;
}
