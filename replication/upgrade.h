/*
 * upgrade.h - upgrading an older store in place, in one write transaction
 * (all or nothing), when a node is opened.
 *
 * Format 2 -> 3: peers, conflicts and the exchange history were JSON
 * documents; they become typed records (proto/storage.proto), held
 * entries get their reason, and the conflict counts move to the metadata.
 * The core reads no nested JSON, so the caller supplies readers for the
 * old documents (node/legacy.c does, with the JSON library the CLI uses).
 *
 * Format 3 -> 4: the record codec reads both record widths (record.h), and
 * a format-3 store holds only narrow ones: only the number changes.  A
 * format-2 store goes through both steps in the same transaction.
 *
 * Format 6 -> 7: only the number changes.  Format 7 lets a record imply
 * its current owner's `own:` entry, and keeps compaction stubs, re-seed
 * and regional-hub keys (docs/storage.md §3.1), which a program of format
 * 6 would misread or not keep; the number makes such a program refuse
 * the store ("newer than this program") instead.
 *
 * Format 7 -> 8: only the number changes.  Format 8 lets a record a
 * snapshot created be its own base (record.h BS_RECORD_OWN_BASE, no
 * "snp:" entry; docs/storage.md 3.2): a program of format 7 would refuse
 * such a record as corrupt, or, had it ignored the flag, lose the base on
 * the record's next write; the number makes it refuse the store instead.
 */
#ifndef BS_UPGRADE_H
#define BS_UPGRADE_H

#include "conflict.h"
#include "peers.h"
#include "xlog.h"

/* Readers of format-2 documents.  Each fills *out from one stored JSON
 * document, or returns BS_ESTORE. */
typedef struct bs_legacy {
    bs_err (*peer)(void *ctx, bs_slice json, bs_peer *out);
    bs_err (*conflict)(void *ctx, bs_slice json, bs_conflict *out);
    bs_err (*exchange)(void *ctx, bs_slice json, bs_xlog_entry *out);
    void *ctx;
} bs_legacy;

/* The store's format, read in a transaction of its own. */
BS_MUST_CHECK bs_err bs_upgrade_format(bs_store *s, uint32_t *format,
                                       bs_errbuf *err);

/*
 * Upgrade the store to BS_STORE_FORMAT (a no-op when it is current).
 * BS_ESTORE for a format this program cannot upgrade, or a document the
 * readers refuse (err names it); the store is then left as it was.
 */
BS_MUST_CHECK bs_err bs_upgrade(bs_store *s, const bs_legacy *dec,
                                bs_errbuf *err);

#endif
