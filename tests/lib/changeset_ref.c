/*
 * changeset_ref.c - the protobuf-c reference decoder of one change
 * (changeset_ref.h), for the tests only.
 *
 * It unpacks the change with the generated code under the product's
 * allocation cap (bs_changeset_pb_unpack) and requires that it packs back
 * to the same bytes, then applies the same bounds as the fast decoder.
 */
#include "changeset_ref.h"

#include <string.h>

#include "branchsync.pb-c.h"

static bs_err
malformed(bs_errbuf *err, const char *what)
{
    return bs_errf(err, BS_EMALFORMED, "malformed change set: %s", what);
}

static bs_err
value_from_pb(const Bs__Value *pv, bs_value *v)
{
    memset(v, 0, sizeof *v);
    if (pv == NULL)
        return BS_EMALFORMED;
    switch (pv->kind_case) {
    case BS__VALUE__KIND_NULL:
        v->type = BS_VNULL;
        break;
    case BS__VALUE__KIND_BOOLEAN:
        v->type = pv->boolean ? BS_VTRUE : BS_VFALSE;
        break;
    case BS__VALUE__KIND_INTEGER:
        v->type = BS_VINT;
        v->i = pv->integer;
        break;
    case BS__VALUE__KIND_REAL:
        v->type = BS_VREAL;
        v->d = pv->real;
        if (v->d != v->d || v->d - v->d != 0)
            return BS_EMALFORMED; /* NaN or infinity: not JSON */
        break;
    case BS__VALUE__KIND_TEXT:
        v->type = BS_VTEXT;
        v->s = pv->text;
        v->len = (uint32_t)strlen(pv->text);
        break;
    default:
        return BS_EMALFORMED;
    }
    return BS_OK;
}

bs_err
bs_changeset_ref_change(const bs_csview *v, size_t i, bs_arena *a,
                        bs_change *out, bs_errbuf *err)
{
    Bs__Change *c;
    bs_field *f;
    bs_err rv = BS_EMALFORMED;

    BS_ASSERT(i < v->count && v->present[i]);
    c = bs_changeset_pb_unpack(&bs__change__descriptor, v->changes[i].p,
                               v->changes[i].n);
    if (c == NULL)
        return malformed(err, "change does not decode");
    if (c->base.n_unknown_fields > 0 ||
        !bs_changeset_pb_canonical(&c->base, v->changes[i].p,
                                   v->changes[i].n)) {
        rv = malformed(err, "change is not canonically encoded");
        goto out;
    }
    for (size_t k = 0; k < c->n_fields; k++)
        if (c->fields[k]->base.n_unknown_fields > 0 ||
            (c->fields[k]->value &&
             c->fields[k]->value->base.n_unknown_fields > 0)) {
            rv = malformed(err, "change is not canonically encoded");
            goto out;
        }
    if (c->seq != v->first + i || c->n_fields > BS_FIELDS_MAX ||
        !bs_collection_valid(c->collection, 1) || !bs_id_valid(c->id) ||
        (c->deleted && c->n_fields > 0)) {
        rv = malformed(err, "change fields out of bounds");
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->seq = c->seq;
    out->hlc = c->hlc;
    out->prio = c->prio;
    out->deleted = c->deleted;
    out->coll = bs_arena_strndup(a, c->collection, strlen(c->collection));
    out->id = bs_arena_strndup(a, c->id, strlen(c->id));
    f = bs_arena_alloc(a, (c->n_fields + 1) * sizeof *f);
    if (out->coll == NULL || out->id == NULL || f == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < c->n_fields; k++) {
        const char *name = c->fields[k]->name;
        size_t nl = strlen(name);

        memset(&f[k], 0, sizeof f[k]);
        if (!bs_field_name_valid(name, nl) ||
            value_from_pb(c->fields[k]->value, &f[k].val) != BS_OK ||
            (f[k].val.type == BS_VTEXT &&
             !bs_utf8_valid(f[k].val.s, f[k].val.len))) {
            rv = malformed(err, "bad field in change");
            goto out;
        }
        f[k].namelen = (uint16_t)nl;
        f[k].name = bs_arena_strndup(a, name, nl);
        if (f[k].val.type == BS_VTEXT)
            f[k].val.s = bs_arena_strndup(a, f[k].val.s, f[k].val.len);
        if (f[k].name == NULL ||
            (f[k].val.type == BS_VTEXT && f[k].val.s == NULL)) {
            rv = BS_ENOMEM;
            goto out;
        }
    }
    if ((rv = bs_fields_sort(f, c->n_fields, err)) != BS_OK) {
        rv = malformed(err, "duplicate field in change");
        goto out;
    }
    /* C6: in the collection its signed route names */
    if (v->route_coll != NULL && strcmp(v->route_coll[i], c->collection)) {
        rv = malformed(err, "change is not in the collection its route names");
        goto out;
    }
    out->fields = f;
    out->nfields = c->n_fields;
    rv = BS_OK;
out:
    bs_changeset_pb_free(c);
    return rv;
}
