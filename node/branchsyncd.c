/*
 * branchsyncd.c - the node daemon's command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fault.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: branchsyncd -d DIR [--log-level error|warn|info|debug]\n"
               "\n"
               "Runs the branchsync node in DIR (or $BRANCHSYNC_DIR): listens "
               "for paired\npeers, exchanges with each on its schedule and "
               "answers 'branchsync'\nthrough DIR/control.sock.  Logs one "
               "line per event on stderr.\nSIGTERM/SIGINT stop it; SIGHUP "
               "re-reads DIR/branchsync.conf.\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    bs_daemon_opts o = {getenv("BRANCHSYNC_DIR"), -1};
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.dir = optarg;
            break;
        case 'l':
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, levels[i]) == 0)
                    o.log_level = i;
            if (o.log_level < 0) {
                fprintf(stderr, "branchsyncd: bad --log-level \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "branchsyncd: bad option %s (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc || o.dir == NULL || o.dir[0] == '\0') {
        fprintf(stderr, "branchsyncd: give the node directory: -d DIR\n");
        return 2;
    }
    /* A read of a damaged store that crashes stops the daemon with one
     * log line (fail-stop): it must not serve or relay from it. */
    bs_fault_install("branchsyncd: error");
    return bs_daemon_run(&o);
}
