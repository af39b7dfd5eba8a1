/*
 * fault.h - turning a crash on a damaged store into one line and exit 1.
 *
 * LMDB does not check its pages: a flipped bit in a page header or a
 * length can make a read run past the end of the data file (SIGBUS) or
 * through a wild pointer (SIGSEGV).  The handler installed here asks the
 * store whether the fault is such a read (bs_store_fault_owner); if so it
 * writes "PREFIX: store is corrupt: reading FILE crashed (SIGBUS); restore
 * from a backup" to stderr with write(2) and ends the process with
 * _exit(1): only async-signal-safe calls, nothing flushed, no lock taken.
 * Any other fault goes to the handler that was there before (the default
 * action: a core dump for a bug of ours, or a sanitizer's report).
 */
#ifndef BS_FAULT_H
#define BS_FAULT_H

/*
 * Install the handler for SIGBUS and SIGSEGV, on an alternate signal stack
 * of the calling thread.  prefix is copied ("branchsync: digest",
 * "branchsyncd: fatal"); call again to change it.  Not thread-safe: call
 * from the main thread before starting others.
 */
void bs_fault_install(const char *prefix);

#endif
