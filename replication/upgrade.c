/*
 * upgrade.c - store format upgrades.
 */
#include "upgrade.h"

#include <string.h>

#include "admit.h"
#include "changes.h"
#include "collections.h"
#include "meta.h"
#include "records.h"
#include "rules.h"
#include "setlog.h"
#include "streams.h"

bs_err
bs_upgrade_format(bs_store *s, uint32_t *format, bs_errbuf *err)
{
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(s, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_format(t, format)) == BS_ENOTNODE)
        rv = bs_errf(err, rv, "store holds no node metadata");
    bs_txn_abort(t);
    return rv;
}

/* Every key and value of db, copied (the table is rewritten while the
 * copies are used). */
typedef struct kv {
    uint8_t *k, *v;
    size_t kn, vn;
} kv;

static void
kv_free(kv *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].k);
        free(e[i].v);
    }
    free(e);
}

static bs_err
snapshot(bs_txn *t, bs_db db, kv **out, size_t *n)
{
    bs_cursor *c;
    bs_slice k, v;
    kv *e = NULL;
    size_t cnt = 0;
    bs_err rv;

    if ((rv = bs_cursor_open(t, db, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        kv *ne = realloc(e, (cnt + 1) * sizeof *ne);
        if (ne == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        e = ne;
        e[cnt].k = malloc(k.n + 1);
        e[cnt].v = malloc(v.n + 1);
        e[cnt].kn = k.n;
        e[cnt].vn = v.n;
        if (e[cnt].k == NULL || e[cnt].v == NULL) {
            free(e[cnt].k);
            free(e[cnt].v);
            rv = BS_ENOMEM;
            break;
        }
        memcpy(e[cnt].k, k.p, k.n);
        memcpy(e[cnt].v, v.p, v.n);
        cnt++;
    }
    bs_cursor_close(c);
    if (rv != BS_ENOTFOUND) {
        kv_free(e, cnt);
        return rv;
    }
    *out = e;
    *n = cnt;
    return BS_OK;
}

static bs_err
peers_v3(bs_txn *t, const bs_legacy *dec, bs_errbuf *err)
{
    kv *e;
    size_t n;
    bs_err rv;

    if ((rv = snapshot(t, BS_DB_PEERS, &e, &n)) != BS_OK)
        return rv;
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        bs_peer p;
        if ((rv = bs_txn_del(t, BS_DB_PEERS, bs_mem(e[i].k, e[i].kn))) != BS_OK)
            break;
        if ((rv = dec->peer(dec->ctx, bs_mem(e[i].v, e[i].vn), &p)) != BS_OK) {
            rv = bs_errf(err, BS_ESTORE, "upgrade: peer %.*s does not read",
                         (int)(e[i].kn > 64 ? 64 : e[i].kn),
                         (const char *)e[i].k);
            break;
        }
        rv = bs_peer_put(t, &p);
        bs_peer_fini(&p);
    }
    kv_free(e, n);
    return rv;
}

static bs_err
conflicts_v3(bs_txn *t, const bs_legacy *dec, bs_errbuf *err)
{
    kv *e;
    size_t n;
    bs_err rv;

    if ((rv = snapshot(t, BS_DB_CONFLICTS, &e, &n)) != BS_OK)
        return rv;
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        bs_conflict c;
        if ((rv = bs_txn_del(t, BS_DB_CONFLICTS, bs_mem(e[i].k, e[i].kn))) !=
            BS_OK)
            break;
        if (dec->conflict(dec->ctx, bs_mem(e[i].v, e[i].vn), &c) != BS_OK) {
            rv = bs_errf(err, BS_ESTORE, "upgrade: a conflict does not read");
            break;
        }
        rv = bs_conflict_put(t, &c);
        bs_conflict_fini(&c);
    }
    kv_free(e, n);
    return rv == BS_OK ? bs_conflict_recount(t) : rv;
}

static bs_err
xlog_v3(bs_txn *t, const bs_legacy *dec, bs_errbuf *err)
{
    kv *e;
    size_t n;
    bs_err rv;

    if ((rv = snapshot(t, BS_DB_XLOG, &e, &n)) != BS_OK)
        return rv;
    for (size_t i = 0; i < n && rv == BS_OK; i++)
        rv = bs_txn_del(t, BS_DB_XLOG, bs_mem(e[i].k, e[i].kn));
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        bs_xlog_entry x;
        if (dec->exchange(dec->ctx, bs_mem(e[i].v, e[i].vn), &x) != BS_OK) {
            rv = bs_errf(err, BS_ESTORE,
                         "upgrade: an exchange-log entry does not read");
            break;
        }
        rv = bs_xlog_put(t, &x);
    }
    kv_free(e, n);
    return rv;
}

/* The hold reason a format-2 stream note names ("held at seq N: WHY"). */
static uint32_t
reason_of(const char *note)
{
    for (uint32_t r = BS_HOLD_CLOCK; r <= BS_HOLD_INTRODUCTION; r++)
        if (strstr(note, bs_hold_reason_text((bs_hold_reason)r)) != NULL)
            return r;
    return BS_HOLD_NONE;
}

static bs_err
held_v3(bs_txn *t)
{
    bs_streamtab tab;
    kv *e;
    size_t n;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = snapshot(t, BS_DB_HELD, &e, &n)) != BS_OK) {
        bs_streams_fini(&tab);
        return rv;
    }
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        const bs_stream *s;
        bs_held h;

        if (e[i].kn != 13) {
            rv = BS_ESTORE;
            break;
        }
        memset(&h, 0, sizeof h);
        h.kind = (bs_held_kind)e[i].k[0];
        h.stream = bs_get_u32be(e[i].k + 1);
        h.first = bs_get_u64be(e[i].k + 5);
        h.set = bs_mem(e[i].v, e[i].vn);
        s = bs_streams_get(&tab, h.stream);
        if (h.kind == BS_HELD_WAITING && s != NULL) {
            h.reason = reason_of(s->note);
            snprintf(h.note, sizeof h.note, "%s",
                     bs_hold_reason_text((bs_hold_reason)h.reason));
        } else if (h.kind == BS_HELD_REFUSED) {
            snprintf(h.note, sizeof h.note, "refused when retried");
        } else if (s != NULL) {
            snprintf(h.note, sizeof h.note, "%s", s->note);
        }
        rv = bs_held_put(t, &h);
    }
    kv_free(e, n);
    bs_streams_fini(&tab);
    return rv;
}

/* 4 -> 5: the rule versions (rules.h).  Before format 5 a collection's
 * rules were its policy alone, every member writing: the record as it
 * stands is one version, stamped with its last upsert; earlier changes
 * are governed by the defaults, which allowed every writer as well. */
static bs_err
rules_v5(bs_txn *t)
{
    bs_records_iter *it;
    bs_streamtab tab;
    const bs_record *r;
    const char *id;
    size_t idlen;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = bs_records_iter_open(t, BS_SYS_COLLECTIONS, NULL, NULL, &it)) !=
        BS_OK) {
        bs_streams_fini(&tab);
        return rv;
    }
    while ((rv = bs_records_iter_next(it, &id, &idlen, &r, NULL)) == BS_OK) {
        char name[BS_COLLECTION_MAX + 1];
        bs_rule_version ver;
        bs_collection rules;
        const bs_stream *s;

        if (idlen > BS_COLLECTION_MAX || !r->has_alive ||
            (s = bs_streams_get(&tab, r->alive.stream)) == NULL) {
            rv = BS_ESTORE;
            break;
        }
        memcpy(name, id, idlen);
        name[idlen] = '\0';
        ver.hlc = r->alive.hlc;
        ver.seq = r->alive.seq;
        memcpy(ver.inc, s->key + BS_PK_LEN, BS_INC_LEN);
        memset(&rules, 0, sizeof rules);
        bs_collection_from_record(&rules, r);
        if ((rv = bs_rules_note(t, name, &ver, &rules)) != BS_OK)
            break;
    }
    bs_records_iter_close(it);
    bs_streams_fini(&tab);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* 5 -> 6: the change index (changes.h), filled with one entry per stored
 * record in key order, as the record stands (its latest version), so a
 * feed read from seq 0 lists every record on an upgraded node as on a new
 * one.  Entries a newer build left are dropped first: this is the only
 * place that numbers them from 1. */
static bs_err
changes_v6(bs_txn *t)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_CHANGES, &c)) != BS_OK)
        return rv;
    while ((rv = bs_cursor_first(c, &k, &v)) == BS_OK)
        if ((rv = bs_cursor_del(c)) != BS_OK)
            break;
    bs_cursor_close(c);
    if (rv != BS_ENOTFOUND)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        char coll[BS_COLLECTION_MAX + 1], id[BS_ID_MAX + 1];
        const uint8_t *nul = memchr(k.p, 0, k.n);
        size_t cn = nul != NULL ? (size_t)(nul - k.p) : 0;
        bs_record r;

        if (nul == NULL || cn == 0 || cn > BS_COLLECTION_MAX ||
            k.n - cn - 1 == 0 || k.n - cn - 1 > BS_ID_MAX) {
            rv = BS_ESTORE;
            break;
        }
        memcpy(coll, k.p, cn);
        coll[cn] = '\0';
        memcpy(id, nul + 1, k.n - cn - 1);
        id[k.n - cn - 1] = '\0';
        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, v.p, v.n, &a)) != BS_OK ||
            (rv = bs_changes_note_record(t, coll, id, &r)) != BS_OK)
            break;
    }
    bs_arena_fini(&a);
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
upgrade_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    const bs_legacy *dec = arg;
    uint32_t format;
    bs_err rv;

    if ((rv = bs_meta_format(t, &format)) != BS_OK)
        return rv;
    if (format == BS_STORE_FORMAT)
        return BS_OK;
    if (format > BS_STORE_FORMAT)
        return bs_errf(err, BS_ESTORE,
                       "store format %u is newer than this program (%u)",
                       format, BS_STORE_FORMAT);
    if (format < 2)
        return bs_errf(err, BS_ESTORE,
                       "store format %u cannot be upgraded (this program "
                       "reads format %u and upgrades formats 2 to %u): "
                       "re-create the node and import its data",
                       format, BS_STORE_FORMAT, BS_STORE_FORMAT - 1);
    if (format == 2 &&
        ((rv = peers_v3(t, dec, err)) != BS_OK ||
         (rv = conflicts_v3(t, dec, err)) != BS_OK ||
         (rv = xlog_v3(t, dec, err)) != BS_OK || (rv = held_v3(t)) != BS_OK))
        return rv;
    /* 3 -> 4: nothing to convert (upgrade.h). */
    if (format < 5 && (rv = rules_v5(t)) != BS_OK)
        return rv;
    if (format < 6 && (rv = changes_v6(t)) != BS_OK)
        return rv;
    /* 6 -> 7 and 7 -> 8: nothing to convert; the number keeps older
     * programs out (upgrade.h). */
    format = BS_STORE_FORMAT;
    return bs_txn_put(t, BS_DB_META, bs_str("format"), bs_mem(&format, 4), 0,
                      NULL);
}

bs_err
bs_upgrade(bs_store *s, const bs_legacy *dec, bs_errbuf *err)
{
    return bs_store_write(s, upgrade_txn, (void *)dec, err);
}
