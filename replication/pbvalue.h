/*
 * pbvalue.h - a value (record.h) as protobuf's Value (proto/branchsync.proto,
 * docs/protocol.md §2.1), for the messages built with protobuf-c: the
 * conflict register's entries and record snapshots share this encoder.
 */
#ifndef BS_PBVALUE_H
#define BS_PBVALUE_H

#include "branchsync.pb-c.h"
#include "record.h"

/*
 * Fill *pv with v.  text is v's text NUL-terminated (borrowed: it must
 * outlive pv; NULL unless v is BS_VTEXT), since protobuf-c's strings are
 * C strings.
 */
void bs_value_pb(Bs__Value *pv, const bs_value *v, char *text);

#endif
