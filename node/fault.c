/*
 * fault.c - the SIGBUS/SIGSEGV handler of fault.h.
 */
#include "fault.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../replication/store.h"

static char prefix[128];
static struct sigaction previous[2]; /* SIGBUS, SIGSEGV */
static char altstack[1 << 16];

static void
put(const char *s)
{
    size_t n = strlen(s); /* async-signal-safe (POSIX.1-2016) */

    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void
on_fault(int sig, siginfo_t *si, void *uc)
{
    const char *path = "";

    (void)uc;
    if (!bs_store_fault_owner(si->si_addr, &path)) {
        /* Not the store's: let the previous handler (or the default
         * action) have it when the access faults again on return. */
        sigaction(sig, &previous[sig == SIGSEGV], NULL);
        return;
    }
    put(prefix);
    put(": store is corrupt: reading ");
    put(path[0] ? path : "the data file");
    put(sig == SIGBUS ? " crashed (SIGBUS: past the end of the file)"
                      : " crashed (SIGSEGV: a damaged page)");
    put("; restore from a backup\n");
    _exit(1);
}

void
bs_fault_install(const char *p)
{
    static int installed;
    struct sigaction sa;
    stack_t st;

    strncpy(prefix, p, sizeof prefix - 1);
    if (installed)
        return;
    installed = 1;
    memset(&st, 0, sizeof st);
    st.ss_sp = altstack;
    st.ss_size = sizeof altstack;
    sigaltstack(&st, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous[0]);
    sigaction(SIGSEGV, &sa, &previous[1]);
}
