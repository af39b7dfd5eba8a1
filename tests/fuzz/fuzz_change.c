/*
 * fuzz_change.c - one Change message (the bytes an origin signs by hash),
 * wrapped by the harness in a set it seals with its own key, so that
 * mutations reach bs_changeset_change() instead of stopping at the hash
 * list.  The fast decoder is checked against the protobuf-c reference
 * (bs_changeset_ref_change, tests/lib/changeset_ref.c) and against the
 * documented limits; accepted changes are round-tripped (F4), merged into
 * an empty record and into the record that results, and the records
 * round-tripped through the stored encoding.
 */
#include <string.h>

#include "../../replication/json.h"
#include "branchsync.pb-c.h"
#include "fuzz_world.h"

/* The change's seq if it starts with field 1 (where our encoder puts it),
 * so the set claims the position the change names. */
static uint64_t
peek_seq(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    if (n < 2 || p[0] != 0x08)
        return 1;
    for (size_t i = 1; i < n && i < 11; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * (i - 1));
        if (!(p[i] & 0x80))
            return v >= 1 && v < (1ull << 62) ? v : 1;
    }
    return 1;
}

static uint8_t *
wrap(const uint8_t *data, size_t size, uint64_t seq, size_t *out_n)
{
    static const uint8_t infobase[BS_INFOBASE_LEN] = {1}, inc[BS_INC_LEN] = {2},
                         zero[BS_HASH_LEN];
    Bs__SetHeader h = BS__SET_HEADER__INIT;
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    uint8_t hash[BS_HASH_LEN], sig[BS_SIG_LEN], *hdr, *out;
    ProtobufCBinaryData hashes[1], changes[1];
    size_t hn;

    bs_hash(hash, data, size);
    h.version = BS_WIRE_VERSION;
    h.infobase = (ProtobufCBinaryData){BS_INFOBASE_LEN, (uint8_t *)infobase};
    h.origin = (ProtobufCBinaryData){BS_PK_LEN, (uint8_t *)bsf_own_pk()};
    h.incarnation = (ProtobufCBinaryData){BS_INC_LEN, (uint8_t *)inc};
    h.first_seq = h.last_seq = seq;
    if (seq != 1)
        h.prev_hash = (ProtobufCBinaryData){BS_HASH_LEN, (uint8_t *)zero};
    hashes[0] = (ProtobufCBinaryData){BS_HASH_LEN, hash};
    h.n_change_hashes = 1;
    h.change_hashes = hashes;
    h.created_ms = BSF_T0_MS;
    hn = bs__set_header__get_packed_size(&h);
    if ((hdr = malloc(hn)) == NULL)
        bsf_die("out of memory");
    bs__set_header__pack(&h, hdr);
    bs_sign(sig, BS_SIG_CONTEXT, hdr, hn, bsf_own_sk());
    cs.header = (ProtobufCBinaryData){hn, hdr};
    cs.signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    changes[0] = (ProtobufCBinaryData){size, (uint8_t *)data};
    cs.n_changes = 1;
    cs.changes = changes;
    *out_n = bs__change_set__get_packed_size(&cs);
    if ((out = malloc(*out_n)) == NULL)
        bsf_die("out of memory");
    bs__change_set__pack(&cs, out);
    free(hdr);
    return out;
}

/* Merge c into r as the apply path does, then round-trip the record. */
static void
merge(bs_record *r, const bs_change *c, uint32_t stream, bs_arena *a)
{
    bs_version ver = {c->hlc, c->seq, stream, c->prio};
    int changed;
    bs_err rv;

    rv = bs_record_merge(r, c->deleted, c->fields, c->nfields, &ver, &bsf_order,
                         a, &changed);
    if (rv != BS_OK && rv != BS_EINVAL && rv != BS_ENOMEM)
        bsf_die("merge failed: %s", bs_strerror(rv));
    for (size_t k = 1; k < r->nfields; k++)
        if (strcmp(r->fields[k - 1].name, r->fields[k].name) >= 0)
            bsf_die("merged record fields are not sorted and unique");
    bsf_check_record(r);
    free(bs_json_record(c->id, strlen(c->id), r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_errbuf err = {{0}};
    bs_csview *v;
    bs_change c;
    bs_record r;
    bs_arena a;
    uint8_t *set;
    size_t n;
    bs_err rv;

    bsf_init();
    if (size > BS_CHANGE_MAX_BYTES)
        return 0;
    set = wrap(data, size, peek_seq(data, size), &n);
    rv = bs_changeset_decode(set, n, &v, &err);
    if (rv != BS_OK) {
        if (size == 0) {
            free(set);
            return 0;
        }
        bsf_die("a set sealed around the input does not decode: %s",
                bs_errmsg(&err, rv));
    }
    if (bs_changeset_verify(v, bsf_own_pk()) != BS_OK)
        bsf_die("a set sealed around the input does not verify");
    bs_arena_init(&a);
    rv = bsf_change_decode(v, 0, &a, &c, &err);
    if (rv == BS_OK) {
        bsf_check_change(v, &c);
        memset(&r, 0, sizeof r);
        merge(&r, &c, 1, &a);
        merge(&r, &c, 2, &a); /* the same change from another stream */
    } else if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM) {
        bsf_die("change refused with a non-input error: %s", bs_strerror(rv));
    }
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(set);
    return 0;
}
