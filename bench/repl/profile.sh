#!/usr/bin/env bash
# bench/repl/profile.sh - where the receiving side of a catch-up spends its
# time: perf profiles of `import` and of a direct network `sync`.
#
#     bench/repl/profile.sh [N] [OUTDIR]    (default 1000000, ./repl-profile)
#
# Needs perf.  BUILD_DIR should be a Release build with symbols and frame
# pointers, e.g.
#     cmake -S . -B /tmp/bs-prof -DCMAKE_BUILD_TYPE=Release \
#           -DCMAKE_C_FLAGS="-g -fno-omit-frame-pointer" -DBS_TESTS=OFF
#     BUILD_DIR=/tmp/bs-prof bench/repl/profile.sh
# Same set-up as exchange.sh / sync.sh (hub loaded with N records, a fresh
# branch per measurement, no daemon on the branch).  Writes to OUTDIR:
#   import.txt, sync.txt     perf report --no-children (self time), by symbol
#   import.dso.txt, ...      the same by library
#   import.callers.txt, ...  perf report --children (inclusive time)
#   import.graph.txt, ...    call graphs (callees) of the symbols >= 10%
#   *.strace.txt             strace -c -w -f: syscall wall-time summary of the same step
#                            (a second, separate run)
# perf.data files are removed; the scratch directory is removed on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-1000000}
OUT=${2:-$PWD/repl-profile}
case $N in '' | *[!0-9]*) echo "usage: bench/repl/profile.sh [N] [OUTDIR]" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "perf not found" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

repl_build branchsync branchsyncd
repl_workdir $((N * 6 + 65536))
machine_line >&2
DATA=$WORK/records.jsonl
gen_data "$N" "$DATA"
HUB=$WORK/hub
hub_port=$(free_port)
node_init "$HUB" head hub "$hub_port"
timeout "$TMO" "$BS" -d "$HUB" load customers "$DATA" >/dev/null 2>&1
rm -f "$DATA"

report() { # NAME PERFDATA
    local r="perf report -i $2 --stdio -g none"
    { $r --no-children --sort symbol --percent-limit 0.3 2>/dev/null || true; } |
        grep -v '^$' >"$OUT/$1.txt" || true
    { $r --no-children --sort dso --percent-limit 0.3 2>/dev/null || true; } |
        grep -v '^$' >"$OUT/$1.dso.txt" || true
    { $r --children --sort symbol --percent-limit 1 2>/dev/null || true; } |
        grep -v '^$' >"$OUT/$1.callers.txt" || true
    { perf report -i "$2" --stdio --children --sort symbol --percent-limit 10 \
        -g graph,2,callee 2>/dev/null || true; } |
        grep -v '^$' >"$OUT/$1.graph.txt" || true
    rm -f "$2"
}

# fresh_branch NAME: a new branch paired with the hub; sets BR.
fresh_branch() {
    local p
    BR=$WORK/$1 p=$(free_port)
    node_init "$BR" "$1" branch "$p"
    pair "$HUB" head "$hub_port" "$BR" "$1" "$p"
}

# --- import ---------------------------------------------------------------
fresh_branch bi1
"$BS" -d "$HUB" export bi1 "$WORK/x.bsx" >/dev/null
sync
timeout "$TMO" perf record -F 999 --call-graph dwarf,16384 -o "$WORK/import.data" \
    -- "$BS" -d "$BR" import "$WORK/x.bsx" >/dev/null 2>"$WORK/perf.err"
report import "$WORK/import.data"
rm -rf "$BR"
fresh_branch bi2
"$BS" -d "$HUB" export bi2 "$WORK/x.bsx" >/dev/null
sync
timeout "$TMO" strace -c -w -f -o "$OUT/import.strace.txt" \
    "$BS" -d "$BR" import "$WORK/x.bsx" >/dev/null
rm -rf "$BR" "$WORK/x.bsx"

# --- direct sync (the CLI is the receiver) --------------------------------
daemon_start "$HUB" "$WORK/hub.log"
fresh_branch bs1
sync
timeout "$TMO" perf record -F 999 --call-graph dwarf,16384 -o "$WORK/sync.data" \
    -- "$BS" -d "$BR" sync head >/dev/null 2>"$WORK/perf.err"
report sync "$WORK/sync.data"
rm -rf "$BR"
fresh_branch bs2
sync
timeout "$TMO" strace -c -w -f -o "$OUT/sync.strace.txt" \
    "$BS" -d "$BR" sync head >/dev/null
echo "profiles in $OUT" >&2
