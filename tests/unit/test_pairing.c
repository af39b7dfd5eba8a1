/*
 * test_pairing.c - pairing through the core (replication/pairing.h): the
 * peer entry, and at the hub the membership change that goes with it, in
 * one transaction; refusals that write nothing; schedules.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/members.h"
#include "../../replication/pairing.h"

static char root[128];
static bst_node head, tallinn, riga;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "pairing");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, NULL);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_pairing");
}

TestSuite(pairing, .init = setup, .fini = teardown, .timeout = 60);

static bs_pair
pair_of(bst_node *other, const char *name)
{
    bs_pair p = {name, "tcp://10.0.0.7:7400", {0}, "every 15m", "01:00-05:00"};

    memcpy(p.pk, bst_meta(other).pk, BS_PK_LEN);
    return p;
}

static bs_err
add(bst_node *at, const bs_pair *p, int *introduced, bs_errbuf *err)
{
    return bs_pairing_add(&at->core, p, introduced, err);
}

static void
add_ok(bst_node *at, bst_node *other, int *introduced)
{
    bs_pair p = pair_of(other, other->name);
    bs_errbuf err = {{0}};
    bs_err rv = add(at, &p, introduced, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static bs_err
peer(bst_node *at, const char *name, bs_peer *p)
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    rv = bs_peer_get(t, name, p);
    bs_txn_abort(t);
    return rv;
}

static bs_err
member(bst_node *at, bst_node *who, bs_member *m)
{
    bs_errbuf err = {{0}};
    bs_meta self = bst_meta(at);
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    rv = bs_members_get(t, &self, bst_meta(who).pk, m);
    bs_txn_abort(t);
    return rv;
}

/* How far node t's own stream has got: its local writes. */
static uint64_t
own_seq(bst_node *t)
{
    bs_meta m = bst_meta(t);
    bs_stream s;

    cr_assert(bst_stream(t, m.pk, m.inc, &s));
    return s.seq;
}

/* Call f and check that it failed with want and the message, and that
 * the store did not change. */
#define REFUSED(node, call, want, text)                                        \
    do {                                                                       \
        uint8_t f0_[BS_HASH_LEN], f1_[BS_HASH_LEN];                            \
        bs_errbuf err = {{0}};                                                 \
        bst_fingerprint(node, f0_);                                            \
        cr_assert_eq((call), want, "%s", err.msg);                             \
        if ((text) != NULL)                                                    \
            cr_assert_str_eq(err.msg, (const char *)(text));                   \
        bst_fingerprint(node, f1_);                                            \
        cr_assert_eq(memcmp(f0_, f1_, BS_HASH_LEN), 0, "the store changed");   \
    } while (0)

Test(pairing, the_hub_records_the_peer_and_introduces_it)
{
    bs_member m;
    bs_peer p;
    int introduced = 0;

    cr_assert_eq(member(&head, &tallinn, &m), BS_ENOTFOUND);
    add_ok(&head, &tallinn, &introduced);
    cr_assert(introduced);
    cr_assert_eq(peer(&head, "tallinn", &p), BS_OK);
    cr_assert_str_eq(p.endpoint, "tcp://10.0.0.7:7400");
    cr_assert_str_eq(p.schedule, "every 15m");
    cr_assert_str_eq(p.window, "01:00-05:00");
    cr_assert_eq(memcmp(p.pk, bst_meta(&tallinn).pk, BS_PK_LEN), 0);
    cr_assert_eq(p.sent_no, 0);
    cr_assert_eq(p.recv_no, 0);
    cr_assert_eq(p.nacked, 0);
    bs_peer_fini(&p);
    cr_assert_eq(member(&head, &tallinn, &m), BS_OK);
    cr_assert_str_eq(m.name, "tallinn");
    cr_assert_eq(m.role, BS_ROLE_BRANCH);
    cr_assert_eq(own_seq(&head), 1, "the introduction is one local write");
}

Test(pairing, a_branch_records_the_peer_and_introduces_nobody)
{
    bs_member m;
    bs_peer p;
    int introduced = 1;

    add_ok(&tallinn, &riga, &introduced);
    cr_assert_not(introduced);
    cr_assert_eq(peer(&tallinn, "riga", &p), BS_OK);
    bs_peer_fini(&p);
    cr_assert_eq(member(&tallinn, &riga, &m), BS_ENOTFOUND);
    cr_assert_eq(own_seq(&tallinn), 0, "a branch wrote a change");
}

Test(pairing, a_name_or_key_paired_already_is_refused)
{
    bs_pair same_name = pair_of(&riga, "tallinn");
    bs_pair same_key = pair_of(&tallinn, "tallinn2");

    add_ok(&head, &tallinn, NULL);
    REFUSED(&head, add(&head, &same_name, NULL, &err), BS_EEXIST,
            "peer \"tallinn\" already exists");
    REFUSED(&head, add(&head, &same_key, NULL, &err), BS_EEXIST,
            "that node is already paired as \"tallinn\"");
}

Test(pairing, the_nodes_own_id_is_refused)
{
    bs_pair self = pair_of(&head, "myself");

    REFUSED(&head, add(&head, &self, NULL, &err), BS_EINVAL,
            "that is this node's own ID");
}

Test(pairing, bad_names_endpoints_and_schedules_are_refused)
{
    bs_pair p = pair_of(&tallinn, "bad name");
    char big[BS_SPEC_MAX + 2];

    REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL,
            "bad peer name \"bad name\"");
    p = pair_of(&tallinn, "tallinn");
    p.endpoint = "http://10.0.0.7";
    REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL,
            "bad endpoint \"http://10.0.0.7\": use tcp://HOST:PORT or "
            "dir:/PATH");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    p = pair_of(&tallinn, "tallinn");
    p.schedule = big;
    REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL, "schedule too long");
    p = pair_of(&tallinn, "tallinn");
    p.window = "01:00-05:00-extra";
    REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL, "schedule too long");
}

/* Issue 11, item 3: a drop folder is "dir:" and an absolute path. */
Test(pairing, a_folder_endpoint_is_an_absolute_path)
{
    static const char *const bad[] = {"dir:", "dir:relative/x", "dir:/a\nb",
                                      "dir:/a\x7f", "folder:/srv/x"};
    bs_pair p = pair_of(&tallinn, "tallinn");

    cr_assert_str_eq(bs_endpoint_folder("dir:/srv/exchange/tln"),
                     "/srv/exchange/tln");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_null(bs_endpoint_folder(bad[i]), "%s", bad[i]);
        p.endpoint = bad[i];
        REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL, NULL);
    }
    bs_errbuf e2 = {{0}};
    p.endpoint = "dir:/srv/exchange/tln";
    cr_assert_eq(add(&head, &p, NULL, &e2), BS_OK, "%s", e2.msg);
}

/*
 * Issue 8, item 12: a wildcard host (the star, 0.0.0.0, [::]) is an
 * address to listen on, not one to dial; before the fix such a peer was
 * paired and its link never connected.  Listening on one stays valid
 * (init --listen, [node] listen).
 */
Test(pairing, a_wildcard_endpoint_is_refused_for_a_peer)
{
    static const char *const wild[] = {
        "tcp://*:5000",   "tcp://0.0.0.0:5000", "tcp://[::]:5000",
        "tcp://[*]:5000", "tcp://0:5000",       "tcp://[0:0::0]:7400",
    };
    static const char *const bad[] = {
        "tcp://a b:1", "tcp://a\nb:1",  "tcp://h:+5", "tcp://h: 5",
        "tcp://h:0",   "tcp://h:65536", "tcp://:5",   "tcp://h\x7f:5",
    };
    static const char *const dial[] = {
        "tcp://10.0.0.7:7400", "tcp://head.example:7400", "tcp://[::1]:7400",
        "tcp://127.0.0.1:1",   "ipc:///run/bs/head",
    };
    bs_pair p = pair_of(&tallinn, "tallinn");

    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        cr_assert(bs_endpoint_listenable(wild[i]), "%s", wild[i]);
        cr_assert(!bs_endpoint_dialable(wild[i]), "%s", wild[i]);
        p.endpoint = wild[i];
        REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL, NULL);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(!bs_endpoint_listenable(bad[i]), "%s", bad[i]);
        cr_assert(!bs_endpoint_dialable(bad[i]), "%s", bad[i]);
    }
    for (size_t i = 0; i < sizeof dial / sizeof dial[0]; i++) {
        cr_assert(bs_endpoint_listenable(dial[i]), "%s", dial[i]);
        cr_assert(bs_endpoint_dialable(dial[i]), "%s", dial[i]);
    }
    p.endpoint = "tcp://10.0.0.7:7400";
    add_ok(&head, &tallinn, NULL);
}

Test(pairing, removing_an_unknown_peer_is_not_found)
{
    REFUSED(&head, bs_pairing_remove(&head.core, "tartu", NULL, &err),
            BS_ENOTFOUND, "no peer \"tartu\" (see peer ls)");
}

Test(pairing, the_hub_revokes_the_peer_it_removes)
{
    bs_errbuf err = {{0}};
    bs_member m;
    bs_peer p;
    int revoked = 0;

    add_ok(&head, &tallinn, NULL);
    cr_assert_eq(bs_pairing_remove(&head.core, "tallinn", &revoked, &err),
                 BS_OK, "%s", err.msg);
    cr_assert(revoked);
    cr_assert_eq(peer(&head, "tallinn", &p), BS_ENOTFOUND);
    cr_assert_eq(member(&head, &tallinn, &m), BS_ENOTFOUND);
    cr_assert(m.revoked);
    cr_assert_eq(own_seq(&head), 2);
    /* Paired again: a member again. */
    add_ok(&head, &tallinn, NULL);
    cr_assert_eq(member(&head, &tallinn, &m), BS_OK);
}

Test(pairing, a_branch_only_forgets_the_peer_it_removes)
{
    bs_errbuf err = {{0}};
    bs_peer p;
    int revoked = 1;

    add_ok(&tallinn, &riga, NULL);
    cr_assert_eq(bs_pairing_remove(&tallinn.core, "riga", &revoked, &err),
                 BS_OK, "%s", err.msg);
    cr_assert_not(revoked);
    cr_assert_eq(peer(&tallinn, "riga", &p), BS_ENOTFOUND);
    cr_assert_eq(own_seq(&tallinn), 0);
}

Test(pairing, schedule_changes_schedule_and_window)
{
    bs_errbuf serr = {{0}};
    char big[BS_SPEC_MAX + 2];
    bs_peer p;

    add_ok(&head, &tallinn, NULL);
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "online", NULL, &serr),
        BS_OK, "%s", serr.msg);
    cr_assert_eq(peer(&head, "tallinn", &p), BS_OK);
    cr_assert_str_eq(p.schedule, "online");
    cr_assert_str_eq(p.window, "");
    bs_peer_fini(&p);
    cr_assert_eq(bs_pairing_schedule(&head.core, "tallinn", "0 2 * * *",
                                     "22:00-06:00", &serr),
                 BS_OK, "%s", serr.msg);
    cr_assert_eq(peer(&head, "tallinn", &p), BS_OK);
    cr_assert_str_eq(p.schedule, "0 2 * * *");
    cr_assert_str_eq(p.window, "22:00-06:00");
    bs_peer_fini(&p);
    REFUSED(&head,
            bs_pairing_schedule(&head.core, "tartu", "online", NULL, &err),
            BS_ENOTFOUND, "no peer \"tartu\" (see peer ls)");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    REFUSED(&head, bs_pairing_schedule(&head.core, "tallinn", big, NULL, &err),
            BS_EINVAL, "schedule too long");
}

Test(pairing, pairing_at_the_hub_replicates_the_introduction)
{
    bs_errbuf err = {{0}};
    bs_member m;

    add_ok(&head, &tallinn, NULL);
    add_ok(&tallinn, &head, NULL);
    add_ok(&head, &riga, NULL);
    cr_assert_eq(bst_carry(&head, &tallinn, NULL, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(member(&tallinn, &riga, &m), BS_OK);
    cr_assert_str_eq(m.name, "riga");
}

/* ---- the pinned hub (issue 9, item 6; docs/protocol.md 8.3, X4) ---- */

/* How peer `name` is pinned at `at` (bs_hub_pin). */
static int
pin_at(bst_node *at, const char *name)
{
    bs_peer p;
    int pin;

    cr_assert_eq(peer(at, name, &p), BS_OK, "no peer %s", name);
    pin = p.hub_pin;
    bs_peer_fini(&p);
    return pin;
}

static void
add_hub_ok(bst_node *at, bst_node *other)
{
    bs_pair p = pair_of(other, other->name);
    bs_errbuf err = {{0}};
    bs_err rv;

    p.hub = 1;
    rv = add(at, &p, NULL, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static void
remove_ok(bst_node *at, const char *name)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_pairing_remove(&at->core, name, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

Test(pairing, a_branchs_first_peer_is_its_hub_and_later_pairings_never_move_it)
{
    add_ok(&tallinn, &head, NULL);
    add_ok(&tallinn, &riga, NULL);
    cr_assert_eq(pin_at(&tallinn, "head"), BS_PIN_AUTO);
    cr_assert_eq(pin_at(&tallinn, "riga"), BS_PIN_NONE);
}

Test(pairing,
     hub_option_takes_the_pin_from_the_first_peer_and_a_second_is_refused)
{
    bst_node tartu;
    bs_pair again;

    add_ok(&tallinn, &riga, NULL); /* first: pinned automatically */
    add_hub_ok(&tallinn, &head);   /* named: takes the pin */
    cr_assert_eq(pin_at(&tallinn, "head"), BS_PIN_NAMED);
    cr_assert_eq(pin_at(&tallinn, "riga"), BS_PIN_NONE);
    bst_node_new(&tartu, root, "tartu", BS_ROLE_BRANCH, NULL);
    again = pair_of(&tartu, "tartu");
    again.hub = 1;
    REFUSED(&tallinn, add(&tallinn, &again, NULL, &err), BS_EEXIST,
            "peer \"head\" is already this branch's hub (--hub): only one "
            "peer can be; to change it, peer rm head first");
    bst_node_free(&tartu);
}

Test(pairing, hub_option_on_the_hub_is_refused)
{
    bs_pair p = pair_of(&tallinn, "tallinn");

    p.hub = 1;
    REFUSED(&head, add(&head, &p, NULL, &err), BS_EINVAL,
            "this node is the hub: it joins no other hub, so --hub does not "
            "apply");
    add_ok(&head, &tallinn, NULL); /* the hub pins nobody */
    cr_assert_eq(pin_at(&head, "tallinn"), BS_PIN_NONE);
}

/* Removing the pinned hub while other peers stay pins nobody (a later
 * pairing is not the first); with no peer left, the next one is first. */
Test(pairing, removing_the_pinned_hub_leaves_no_pin_until_one_is_named)
{
    add_ok(&tallinn, &head, NULL);
    add_ok(&tallinn, &riga, NULL);
    remove_ok(&tallinn, "head");
    cr_assert_eq(pin_at(&tallinn, "riga"), BS_PIN_NONE);
    add_ok(&tallinn, &head, NULL);
    cr_assert_eq(pin_at(&tallinn, "head"), BS_PIN_NONE);
    remove_ok(&tallinn, "head");
    add_hub_ok(&tallinn, &head);
    cr_assert_eq(pin_at(&tallinn, "head"), BS_PIN_NAMED);
    remove_ok(&tallinn, "head");
    remove_ok(&tallinn, "riga");
    add_ok(&tallinn, &riga, NULL);
    cr_assert_eq(pin_at(&tallinn, "riga"), BS_PIN_AUTO);
}

/* A joined branch's hub is the one it joined: pairing it again pins it,
 * and --hub cannot name another. */
Test(pairing, a_joined_branch_pins_only_the_hub_it_joined)
{
    bs_pair other = pair_of(&riga, "riga");
    char id[BS_NODE_ID_LEN + 1], msg[200];
    bs_errbuf cerr = {{0}};
    bs_err rv;

    add_ok(&head, &tallinn, NULL);
    add_ok(&tallinn, &head, NULL);
    rv = bst_carry(&head, &tallinn, NULL, &cerr);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&cerr, rv));
    cr_assert(bst_meta(&tallinn).joined);
    remove_ok(&tallinn, "head");
    add_ok(&tallinn, &riga, NULL); /* first again, but not the hub */
    cr_assert_eq(pin_at(&tallinn, "riga"), BS_PIN_NONE);
    add_ok(&tallinn, &head, NULL);
    cr_assert_eq(pin_at(&tallinn, "head"), BS_PIN_AUTO);
    remove_ok(&tallinn, "riga");
    other.hub = 1;
    bs_node_id_format(bst_meta(&head).pk, id);
    snprintf(msg, sizeof msg,
             "this branch has joined the infobase of hub %s: --hub can name "
             "only that hub",
             id);
    REFUSED(&tallinn, add(&tallinn, &other, NULL, &err), BS_EINVAL, msg);
}
