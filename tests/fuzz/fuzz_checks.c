/*
 * fuzz_checks.c - invariants several harnesses check on what a decoder
 * accepted: shape, and round trips through the encoders (docs/reliability.md
 * F4). A failed check aborts through bsf_die(), which libFuzzer reports as a
 * crash with the input that caused it.
 */
#include <string.h>

#include "../../replication/collections.h"
#include "../../replication/members.h"
#include "../../replication/records.h"
#include "../../replication/status.h"
#include "../lib/changeset_ref.h"
#include "branchsync.pb-c.h"
#include "fuzz_world.h"

/* ---- the harness's own key ---- */

static uint8_t own_pk[BS_PK_LEN];
static uint8_t *own_sk;

static void
own_key(void)
{
    if (own_sk != NULL)
        return;
    bsf_init();
    if ((own_sk = bs_secret_alloc(BS_SK_LEN)) == NULL ||
        bs_crypto_keypair(own_pk, own_sk) != BS_OK)
        bsf_die("cannot make the harness key pair");
}

const uint8_t *
bsf_own_pk(void)
{
    own_key();
    return own_pk;
}

const uint8_t *
bsf_own_sk(void)
{
    own_key();
    return own_sk;
}

/* ---- changes ---- */

static int
text_eq(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static void
check_shape(const bs_change *c)
{
    if (!bs_collection_valid(c->coll, 1) || !bs_id_valid(c->id))
        bsf_die("decoded change has a bad collection or id");
    if (c->nfields > BS_FIELDS_MAX || (c->deleted && c->nfields > 0))
        bsf_die("decoded change has %zu fields (deleted %d)", c->nfields,
                c->deleted);
    for (size_t k = 0; k < c->nfields; k++) {
        const bs_field *f = &c->fields[k];

        if (f->namelen != strlen(f->name) ||
            !bs_field_name_valid(f->name, f->namelen))
            bsf_die("decoded change has a bad field name");
        if (k > 0 && strcmp(c->fields[k - 1].name, f->name) >= 0)
            bsf_die("decoded fields are not sorted and unique");
        if (f->val.type > BS_VTEXT)
            bsf_die("decoded field has value type %u", f->val.type);
        if (f->val.type == BS_VREAL &&
            (f->val.d != f->val.d || f->val.d - f->val.d != 0))
            bsf_die("decoded field is NaN or infinite");
        if (f->val.type == BS_VTEXT &&
            (f->val.s == NULL || f->val.s[f->val.len] != '\0' ||
             !bs_utf8_valid(f->val.s, f->val.len)))
            bsf_die("decoded text is not NUL-terminated valid UTF-8");
    }
}

void
bsf_check_change(const bs_csview *v, const bs_change *c)
{
    bs_errbuf err = {{0}};
    bs_csbuild b;
    bs_sealed *x;
    bs_seal s;
    bs_csview *v2;
    bs_change c2;
    bs_arena a;
    uint8_t *buf;
    size_t n;
    bs_err rv;

    check_shape(c);
    bs_csbuild_init(&b);
    if ((rv = bs_csbuild_add(&b, c)) != BS_OK)
        bsf_die("re-encoding a decoded change: %s", bs_strerror(rv));
    memset(&s, 0, sizeof s);
    memcpy(s.infobase, v->infobase, BS_INFOBASE_LEN);
    memcpy(s.origin, bsf_own_pk(), BS_PK_LEN);
    memcpy(s.inc, v->inc, BS_INC_LEN);
    s.has_prev = c->seq != 1;
    s.created_ms = v->created_ms;
    if ((rv = bs_csbuild_seal(&b, &s, bsf_own_sk(), &x)) != BS_OK)
        bsf_die("sealing a re-encoded change: %s", bs_strerror(rv));
    bs_csbuild_fini(&b);
    n = bs_sealed_size(x);
    if ((buf = malloc(n)) == NULL)
        bsf_die("out of memory");
    bs_sealed_write(x, buf);
    bs_sealed_free(x);
    if ((rv = bs_changeset_decode(buf, n, &v2, &err)) != BS_OK)
        bsf_die("our own re-encoding of a change does not decode: %s",
                bs_errmsg(&err, rv));
    if (bs_changeset_verify(v2, bsf_own_pk()) != BS_OK)
        bsf_die("our own sealed set does not verify");
    if (v2->count != 1 || v2->first != c->seq || !v2->present[0])
        bsf_die("re-sealed set has the wrong shape");
    bs_arena_init(&a);
    if ((rv = bs_changeset_change(v2, 0, &a, &c2, &err)) != BS_OK)
        bsf_die("re-encoded change does not decode: %s", bs_errmsg(&err, rv));
    if (c2.seq != c->seq || c2.hlc != c->hlc || c2.prio != c->prio ||
        c2.deleted != c->deleted || !text_eq(c2.coll, c->coll) ||
        !text_eq(c2.id, c->id) || c2.nfields != c->nfields)
        bsf_die("change round trip differs (header fields)");
    for (size_t k = 0; k < c->nfields; k++)
        if (!text_eq(c2.fields[k].name, c->fields[k].name) ||
            !bs_value_eq(&c2.fields[k].val, &c->fields[k].val))
            bsf_die("change round trip differs in field %zu (\"%s\")", k,
                    c->fields[k].name);
    bs_arena_fini(&a);
    bs_changeset_free(v2);
    free(buf);
}

/* ---- the fast decoder against the reference ---- */

/* Valid by every documented limit (changeset.h, record.h), judged with
 * protobuf-c's own allocator: canonical, no unknown fields at any depth,
 * seq in place, names and values valid, no duplicate names, and in the
 * collection its signed route names, if any (route: NULL when none). */
static int
valid_by_limits(const uint8_t *p, size_t n, uint64_t seq, const char *route)
{
    Bs__Change *c = bs__change__unpack(NULL, n, p);
    uint8_t *again = NULL;
    int ok = 0;

    if (c == NULL)
        return 0;
    if (c->seq != seq || c->n_fields > BS_FIELDS_MAX ||
        !bs_collection_valid(c->collection, 1) || !bs_id_valid(c->id) ||
        (c->deleted && c->n_fields > 0) || c->base.n_unknown_fields > 0 ||
        (route != NULL && strcmp(route, c->collection) != 0) ||
        bs__change__get_packed_size(c) != n || (again = malloc(n)) == NULL)
        goto out;
    bs__change__pack(c, again);
    if (memcmp(again, p, n) != 0)
        goto out;
    for (size_t k = 0; k < c->n_fields; k++) {
        const Bs__Field *f = c->fields[k];
        const Bs__Value *v = f->value;
        if (f->base.n_unknown_fields > 0 || v == NULL ||
            v->base.n_unknown_fields > 0 ||
            !bs_field_name_valid(f->name, strlen(f->name)) ||
            v->kind_case == BS__VALUE__KIND__NOT_SET ||
            (v->kind_case == BS__VALUE__KIND_REAL &&
             (v->real != v->real || v->real - v->real != 0)) ||
            (v->kind_case == BS__VALUE__KIND_TEXT &&
             !bs_utf8_valid(v->text, strlen(v->text))))
            goto out;
        for (size_t j = 0; j < k; j++)
            if (strcmp(c->fields[j]->name, f->name) == 0)
                goto out;
    }
    ok = 1;
out:
    free(again);
    bs__change__free_unpacked(c, NULL);
    return ok;
}

static int
change_eq(const bs_change *a, const bs_change *b)
{
    if (a->seq != b->seq || a->hlc != b->hlc || a->prio != b->prio ||
        a->deleted != b->deleted || !text_eq(a->coll, b->coll) ||
        !text_eq(a->id, b->id) || a->nfields != b->nfields)
        return 0;
    for (size_t k = 0; k < a->nfields; k++)
        if (!text_eq(a->fields[k].name, b->fields[k].name) ||
            a->fields[k].namelen != b->fields[k].namelen ||
            !bs_value_eq(&a->fields[k].val, &b->fields[k].val))
            return 0;
    return 1;
}

bs_err
bsf_change_decode(const bs_csview *v, size_t i, bs_arena *a, bs_change *out,
                  bs_errbuf *err)
{
    bs_errbuf err2 = {{0}};
    bs_change ref;
    bs_arena a2;
    bs_err rv, rv2;
    int valid;

    rv = bs_changeset_change(v, i, a, out, err);
    bs_arena_init(&a2);
    rv2 = bs_changeset_ref_change(v, i, &a2, &ref, &err2);
    valid = valid_by_limits(v->changes[i].p, v->changes[i].n, v->first + i,
                            v->route_coll != NULL ? v->route_coll[i] : NULL);
    if (rv == BS_OK && rv2 == BS_OK && !change_eq(out, &ref))
        bsf_die("fast and reference change decoders disagree on the result");
    if (rv != BS_OK && rv2 == BS_OK)
        bsf_die("the fast decoder refuses what the reference accepts: %s",
                bs_errmsg(err, rv));
    if (rv == BS_OK && rv2 != BS_OK && !valid)
        bsf_die("the fast decoder accepts what the reference refuses: %s",
                bs_errmsg(&err2, rv2));
    if (rv != BS_OK && rv != BS_ENOMEM && valid && !bsf_ignored("decode-cap"))
        bsf_die("decode-cap: a change valid by every documented limit was "
                "refused: %s",
                bs_errmsg(err, rv));
    bs_arena_fini(&a2);
    return rv;
}

/* ---- records ---- */

static uint8_t stream_keys[256][BS_PK_LEN + BS_INC_LEN];

static const uint8_t *
any_stream_key(void *ctx, uint32_t idx)
{
    static int ready;

    (void)ctx;
    if (!ready) {
        for (int i = 0; i < 256; i++)
            memset(stream_keys[i], i, sizeof stream_keys[i]);
        ready = 1;
    }
    return stream_keys[idx & 255];
}

const bs_order bsf_order = {0, any_stream_key, NULL};

void
bsf_check_record(const bs_record *r)
{
    bs_recenc e, e2;
    size_t n, n2;
    uint8_t *b, *b2;
    bs_record r2;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    if (bs_record_prepare(r, &a, &e) != BS_OK ||
        (b = malloc(e.size + 1)) == NULL)
        bsf_die("out of memory");
    n = e.size;
    bs_record_encode(r, &e, b);
    if ((rv = bs_record_decode(&r2, b, n, &a)) != BS_OK)
        bsf_die("a re-encoded record does not decode: %s", bs_strerror(rv));
    if (r2.nfields != r->nfields || r2.live != (r->live != 0) ||
        r2.has_alive != r->has_alive || r2.has_tomb != r->has_tomb)
        bsf_die("record round trip differs");
    if (bs_record_prepare(&r2, &a, &e2) != BS_OK ||
        (b2 = malloc(e2.size + 1)) == NULL)
        bsf_die("out of memory");
    n2 = e2.size;
    bs_record_encode(&r2, &e2, b2);
    if (n2 != n || memcmp(b, b2, n) != 0)
        bsf_die("record encoding is not stable (%zu -> %zu bytes)", n, n2);
    free(b2);
    bs_arena_fini(&a);
    free(b);
}

/* bs_fields_sort's order: bytewise, then shorter first. */
static int
name_cmp(const bs_field *a, const bs_field *b)
{
    size_t n = a->namelen < b->namelen ? a->namelen : b->namelen;
    int c = memcmp(a->name, b->name, n);

    if (c != 0)
        return c;
    return a->namelen < b->namelen ? -1 : a->namelen > b->namelen;
}

/* The live records of collection coll: ids and fields valid, fields
 * sorted and unique, values valid; returns how many there are. */
static uint64_t
check_coll(bs_txn *t, const char *coll)
{
    bs_errbuf err = {{0}};
    bs_records_iter *it;
    const bs_record *r;
    const char *idp;
    size_t idlen;
    uint64_t n = 0;
    bs_err rv;

    if (bs_records_iter_open(t, coll, NULL, NULL, &it) != BS_OK)
        bsf_die("reading the records of %s", coll);
    while ((rv = bs_records_iter_next(it, &idp, &idlen, &r, &err)) == BS_OK) {
        char id[BS_ID_MAX + 1];

        if (idlen > BS_ID_MAX)
            bsf_die("store-corrupt: a record ID of %s is too long", coll);
        memcpy(id, idp, idlen);
        id[idlen] = '\0';
        if (!bs_id_valid(id))
            bsf_die("store-corrupt: bad record key %s/%s", coll, id);
        for (size_t i = 0; i < r->nfields; i++) {
            const bs_field *f = &r->fields[i];
            if (!bs_field_name_valid(f->name, f->namelen))
                bsf_die("store-corrupt: record %s/%s: field %zu has a bad "
                        "name",
                        coll, id, i);
            if (i > 0 && name_cmp(&f[-1], f) >= 0)
                bsf_die("store-corrupt: record %s/%s: fields not sorted", coll,
                        id);
            if (f->val.type > BS_VTEXT ||
                (f->val.type == BS_VTEXT &&
                 !bs_utf8_valid(f->val.s, f->val.len)))
                bsf_die("store-corrupt: record %s/%s: field \"%.*s\" has a "
                        "bad value",
                        coll, id, (int)f->namelen, f->name);
        }
        n++;
    }
    if (rv != BS_ENOTFOUND)
        bsf_die("store-corrupt: %s", bs_errmsg(&err, rv));
    bs_records_iter_close(it);
    return n;
}

/*
 * Through the core API: the status scan decodes every stored user record,
 * live or deleted, and checks that every record key names a collection;
 * then the live records of every user collection and of the system
 * collections are walked (records.h) and checked field by field, and the
 * membership and policy readers decode theirs.  (Deleted records are not
 * readable field by field through the core API: their fields are only
 * known to decode.)
 */
void
bsf_check_store(bs_store *s)
{
    static const char *const sys[] = {BS_SYS_COLLECTIONS, BS_SYS_MEMBERS};
    bs_status_opts o = {0, 0, 1};
    bs_errbuf err = {{0}};
    bs_collection *cv;
    bs_member *mv;
    bs_status st;
    bs_meta m;
    size_t n;
    bs_txn *t;
    bs_err rv;

    if (bsf_ignored("store-corrupt"))
        return;
    if (bs_store_read(s, &t, &err) != BS_OK ||
        bs_meta_load(t, &m, &err) != BS_OK)
        bsf_die("reading the store: %s", err.msg);
    if ((rv = bs_status_read(t, &m, &o, &st, &err)) != BS_OK)
        bsf_die("store-corrupt: %s", bs_errmsg(&err, rv));
    for (size_t i = 0; i < st.ncolls; i++) {
        if (!bs_collection_valid(st.colls[i].name, 0))
            bsf_die("store-corrupt: bad collection name %s", st.colls[i].name);
        if (check_coll(t, st.colls[i].name) != st.colls[i].records)
            bsf_die("store-corrupt: %s: the live records do not add up",
                    st.colls[i].name);
    }
    bs_status_fini(&st);
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        (void)check_coll(t, sys[i]);
    if ((rv = bs_members_list(t, &mv, &n)) != BS_OK)
        bsf_die("store-corrupt: members: %s", bs_strerror(rv));
    free(mv);
    if ((rv = bs_collections_list(t, &cv, &n)) != BS_OK)
        bsf_die("store-corrupt: collections: %s", bs_strerror(rv));
    free(cv);
    bs_txn_abort(t);
}
