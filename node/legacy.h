/*
 * legacy.h - readers of the JSON documents that store format 2 kept for
 * peers, conflicts and the exchange history, for the store upgrade
 * (replication/upgrade.h).  The format-2 layouts are in docs/storage.md.
 */
#ifndef BS_LEGACY_H
#define BS_LEGACY_H

#include "../replication/upgrade.h"

/* The readers, ready to pass to bs_upgrade. */
extern const bs_legacy bs_legacy_v2;

#endif
