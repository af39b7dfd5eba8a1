/*
 * pbvalue.c - a value as protobuf's Value (pbvalue.h).
 */
#include "pbvalue.h"

void
bs_value_pb(Bs__Value *pv, const bs_value *v, char *text)
{
    bs__value__init(pv);
    switch (v->type) {
    case BS_VNULL:
        pv->kind_case = BS__VALUE__KIND_NULL;
        pv->null = 1;
        break;
    case BS_VFALSE:
    case BS_VTRUE:
        pv->kind_case = BS__VALUE__KIND_BOOLEAN;
        pv->boolean = v->type == BS_VTRUE;
        break;
    case BS_VINT:
        pv->kind_case = BS__VALUE__KIND_INTEGER;
        pv->integer = v->i;
        break;
    case BS_VREAL:
        pv->kind_case = BS__VALUE__KIND_REAL;
        pv->real = v->d;
        break;
    default:
        pv->kind_case = BS__VALUE__KIND_TEXT;
        pv->text = text;
    }
}
