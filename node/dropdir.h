/*
 * dropdir.h - exchange through a shared folder: a peer paired with the
 * endpoint "dir:PATH" (peers.h bs_endpoint_folder) exchanges exchange
 * files (bundle.h, docs/protocol.md §9) in PATH, the way offices that
 * share only a network share, a synced directory or a USB stick swap 1C
 * exchange messages.  docs/operations.md, "Drop folders".
 *
 * One run (the daemon's schedule, or `branchsync sync PEER`):
 *  1. imports, in message-number order, every file the peer addressed to
 *     this node, through the ordinary import (bs_bundle_import: the same
 *     admission as every other path), and moves each to PATH/done/; a file
 *     refused for its content (damaged, truncated, tampered, for another
 *     infobase, ...) goes to PATH/refused/ with NAME.err beside it, one
 *     line saying why.  A local fault (disk, memory, store) leaves the
 *     file where it is and stops the run;
 *  2. writes what the peer has not acknowledged (the acknowledgement its
 *     own files carry in their envelope) as one new file: written under a
 *     temporary name, fsynced, then renamed.  A run with nothing to send
 *     that imported nothing new writes no file.
 *
 * File names: from-SSSSSSSS-to-RRRRRRRR-NNNNNNNNNNNN.bsx, S and R the
 * first group of the sender's and the receiver's node ID, N the message
 * number (the envelope's, one more per file to that receiver), so names
 * say from whom to whom and sort in the order they were written.  Any
 * other name is ignored: temporary names (.tmp, .part), files for other
 * nodes sharing the folder, anything else.
 */
#ifndef BS_DROPDIR_H
#define BS_DROPDIR_H

#include "../replication/core.h"
#include "health.h"
#include "node.h"

#define BS_DROP_SUFFIX   ".bsx"
#define BS_DROP_NAME_MAX 64

/* What one run did. */
typedef struct bs_drop_stats {
    uint64_t files_in;      /* files of the peer imported (now in done/) */
    uint64_t replays;       /* of those, files already imported before */
    uint64_t files_refused; /* moved to refused/ */
    uint64_t sets_received, changes, conflicts, held;
    uint64_t sets_sent, bytes_out;
    char file_out[BS_DROP_NAME_MAX]; /* the file written; "" when none */
    /* The first refusal, "FILE: reason"; "" when none. */
    char refused[BS_ERRMSG_LEN];
    /* What the run found wrong although it completed (files refused), in
     * one line for the log and `sync` (exit 1); "" when nothing. */
    char problem[BS_ERRMSG_LEN];
} bs_drop_stats;

/*
 * One run with folder peer `peer` of node n, through c (with the secret
 * key: joining re-seals, exporting signs).  Records the run in the
 * exchange log (via "folder").  BS_ENOTFOUND for an unknown peer or a
 * folder that does not exist; BS_EINVAL for a peer that is not a folder
 * peer; BS_EIO when the folder cannot be written; a local fault of an
 * import as such.  Files refused are not an error of the run: *st counts
 * them and names the first.
 */
BS_MUST_CHECK bs_err bs_drop_run(bs_node *n, const bs_core *c, const char *peer,
                                 bs_drop_stats *st, bs_errbuf *err);

/* A folder as status and doctor see it, read without changing it. */
typedef struct bs_drop_scan {
    int exists;                        /* the folder is a directory */
    int writable;                      /* and this process may write in it */
    uint64_t pending_in;               /* the peer's files not imported yet */
    uint64_t pending_out;              /* ours the peer has not taken yet */
    uint64_t refused_here;             /* the peer's files in refused/ */
    uint64_t refused_there;            /* ours the peer refused */
    uint64_t oldest_out_ms;            /* mtime of our oldest pending file; 0 */
    char first_refusal[BS_ERRMSG_LEN]; /* "FILE: reason" of the oldest */
} bs_drop_scan;

/* Scan folder path for the files between me and peer (public keys). */
void bs_drop_scan_folder(const char *path, const uint8_t me[BS_PK_LEN],
                         const uint8_t peer[BS_PK_LEN], bs_drop_scan *out);

/* The file name of message number no from `from` to `to` (n >=
 * BS_DROP_NAME_MAX). */
void bs_drop_name(const uint8_t from[BS_PK_LEN], const uint8_t to[BS_PK_LEN],
                  uint64_t no, char *buf, size_t n);

/* Files older than this waiting for the peer make doctor say so. */
#define BS_DROP_UNREAD_MS (48 * 3600 * 1000ull)

/*
 * Doctor's findings for folder peer `peer` (folder path, keys as for
 * bs_drop_scan_folder) at now_ms: "folder_missing", "folder_refused",
 * "folder_unread".  BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_drop_problems(const char *peer, const char *path,
                                      const uint8_t me[BS_PK_LEN],
                                      const uint8_t pk[BS_PK_LEN],
                                      uint64_t now_ms, bs_problems *out);

#endif
