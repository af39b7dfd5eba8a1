#!/usr/bin/env bash
# bench/repl/fanin.sh - a head office with many branches (issue 12 items 1
# and 7): one exchange round at each number of branches given, and how it
# grows.
#
#     bench/repl/fanin.sh [N ...]       (default: 100 300 1000)
#
# Environment: BUILD_DIR (see common.sh), BENCH_DIR (the scratch parent:
# /tmp is a disk here, so every import's commit is durable; /dev/shm
# leaves the storage's fsync out and shows the CPU's share), FANIN_CHANGES
# (per branch and for the catalog, default 1000).
#
# Each N runs build/bench/repl/fanin (bench/repl/fanin.c says what it
# does): every node is a real store driven through the core API in this
# one process, so the branches' work is printed apart from the hub's.
# About 1 minute and 4 GiB of memory for N = 1000 (50 s of it setting up).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

repl_build fanin
machine_line >&2
for n in "${@:-100 300 1000}"; do
    for x in $n; do
        timeout "$TMO" "$BUILD/bench/repl/fanin" "$x" "${FANIN_CHANGES:-1000}"
    done
done
