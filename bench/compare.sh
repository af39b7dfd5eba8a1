#!/usr/bin/env bash
# bench/compare.sh - the same benchmarks on two builds, interleaved, and one
# table of medians: did a change make anything slower?
#
#     bench/compare.sh OLD_BUILD NEW_BUILD [N]     (N records, default 200000)
#
# OLD_BUILD and NEW_BUILD are CMake build directories (Release), each with
# tools/branchsync, node/branchsyncd, bench/bench_lmdb_raw,
# bench/repl/repl_latency and bench/repl/zmq_curve_rtt already built (this
# script builds nothing).  The benchmark scripts are those of this tree; only
# BUILD_DIR changes between the two builds.
#
# Environment:
#   COMPARE_ROUNDS     rounds (default 3); each round runs every benchmark
#                      once per build, the two builds back to back, in the
#                      order old, new in odd rounds and new, old in even ones
#                      (so neither build always runs first, and load on the
#                      machine falls on both alike)
#   COMPARE_BENCHES    which benchmarks (default "load exchange sync latency")
#                        load      bench/load.sh N
#                        exchange  bench/repl/exchange.sh N
#                        sync      SYNC_MODES=daemon bench/repl/sync.sh N
#                                  (network catch-up through both daemons)
#                        latency   bench/repl/latency.sh LAT_N
#   COMPARE_LAT_N      writes per direction for latency (default 300)
#   COMPARE_THRESHOLD  % worse that flags a figure (default 10)
#   COMPARE_KEEP       a directory: keep every benchmark's output there
#                      (default: in the scratch directory, removed on exit)
#   BENCH_DIR, BENCH_TIMEOUT (default here 900 s per command), BENCH_SEED:
#                      passed to the benchmarks (bench/repl/common.sh)
#
# Prints, per figure: the median of the old build, the median of the new,
# the change in %, the "paired" change (the median over rounds of each new
# run against the old run back to back with it, which cancels some of the
# machine's drift), every run, and "WORSE" when the new median is worse by
# more than the threshold (rates lower; latencies, memory or CPU seconds
# higher; CPU seconds, counted in 0.01 s ticks, also by more than 0.02 s).
# Rows marked "limit" are the machine's own limits measured in the same
# runs (raw LMDB, ZeroMQ round trip): they are never flagged, and how much
# they move between the two builds (the last line) shows the noise of the
# machine; the ratios to them are in the table too.  On a shared machine a
# 10 % threshold is below the noise of 3 rounds (docs/performance.md,
# "Comparing two builds"): read a flag together with the paired column and
# the noise line, and use more rounds for small effects.
# Exit status: 0; 1 if a benchmark failed; 3 if a figure is flagged.  With
# the defaults the whole comparison takes 2 to 4 minutes on 2 cores.
set -euo pipefail

usage() { echo "usage: bench/compare.sh OLD_BUILD NEW_BUILD [N]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${3:-200000}
ROUNDS=${COMPARE_ROUNDS:-3}
BENCHES=${COMPARE_BENCHES:-load exchange sync latency}
LAT_N=${COMPARE_LAT_N:-300}
THR=${COMPARE_THRESHOLD:-10}
export BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}
export BENCH_RUNS=1
case $N in '' | *[!0-9]* | 0) usage ;; esac
case $ROUNDS in '' | *[!0-9]* | 0) echo "COMPARE_ROUNDS: a number >= 1" >&2; exit 2 ;; esac
case $LAT_N in '' | *[!0-9]* | 0) echo "COMPARE_LAT_N: a number >= 1" >&2; exit 2 ;; esac
case $THR in '' | *[!0-9.]*) echo "COMPARE_THRESHOLD: a percentage" >&2; exit 2 ;; esac
for b in $BENCHES; do
    case $b in load | exchange | sync | latency) ;;
        *) echo "COMPARE_BENCHES: load, exchange, sync and/or latency" >&2; exit 2 ;;
    esac
done

OLD=$(cd "$1" && pwd) NEW=$(cd "$2" && pwd)
for d in "$OLD" "$NEW"; do
    for f in tools/branchsync node/branchsyncd bench/bench_lmdb_raw \
        bench/repl/repl_latency bench/repl/zmq_curve_rtt; do
        [ -x "$d/$f" ] || { echo "$d/$f is missing: build it first" >&2; exit 2; }
    done
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$d/CMakeCache.txt" 2>/dev/null || true)
    [ "$t" = Release ] || echo "warning: $d is a '${t:-unknown}' build, not Release" >&2
done

PARENT=${BENCH_DIR:-/tmp}
mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/bs-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
LOGS=${COMPARE_KEEP:-$WORK/logs}
mkdir -p "$LOGS"

# figures: one line "build figure value" per measurement, in $WORK/figures.
FIG=$WORK/figures
: >"$FIG"
FAILED=0

# run_bench BENCH SIDE LOG: run one benchmark on build SIDE (old/new).
run_bench() {
    local b=$1 side=$2 log=$3 dir
    dir=$([ "$side" = old ] && echo "$OLD" || echo "$NEW")
    case $b in
        load) BUILD_DIR=$dir "$ROOT/bench/load.sh" "$N" ;;
        exchange) BUILD_DIR=$dir "$ROOT/bench/repl/exchange.sh" "$N" ;;
        sync) BUILD_DIR=$dir SYNC_MODES=daemon "$ROOT/bench/repl/sync.sh" "$N" ;;
        latency) BUILD_DIR=$dir "$ROOT/bench/repl/latency.sh" "$LAT_N" ;;
    esac >"$log" 2>&1
}

# field LOG REGEX N: the N-th whitespace-separated word of the first line
# of LOG matching REGEX.
field() { awk -v n="$3" "/$2/ { print \$n; exit }" "$1"; }
# lat LOG LABEL KEY: a latency percentile (the number after KEY).
lat() {
    awk -v k="$3" -v l="$2" 'index($0, l) == 1 || index($0, "  " l) == 1 {
        for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$1"
}
put() { if [ -n "$3" ]; then echo "$1 $2 $3 $round" >>"$FIG"; fi; }

# collect BENCH SIDE LOG: append the figures of LOG to $FIG.
collect() {
    local b=$1 s=$2 f=$3
    case $b in
        load)
            put "$s" load.rate "$(field "$f" 'branchsync load :' 4)"
            put "$s" load.raw "$(field "$f" 'raw LMDB  *:' 4)"
            put "$s" load.ratio "$(field "$f" 'ratio branchsync\/raw' 3)"
            ;;
        exchange)
            put "$s" xchg.export "$(field "$f" '^  export  *:' 3)"
            put "$s" xchg.import "$(field "$f" '^  import  *:' 3)"
            put "$s" xchg.both "$(field "$f" '^  export\+import *:' 3)"
            put "$s" xchg.raw "$(field "$f" '^  raw LMDB  *:' 4)"
            put "$s" xchg.ratio "$(awk '/^  export\+import *:/ {
                for (i = 1; i < NF; i++) if ($i == "ratio") { print $(i + 1); exit } }' "$f")"
            put "$s" xchg.rss "$(awk '/peak RssAnon: export/ { print $7; exit }' "$f")"
            put "$s" xchg.excpu "$(field "$f" '^  export  *:' 8)"
            put "$s" xchg.imcpu "$(field "$f" '^  import  *:' 8)"
            ;;
        sync)
            put "$s" sync.rate "$(field "$f" '^  sync  *:' 3)"
            put "$s" sync.raw "$(field "$f" '^  raw LMDB  *:' 4)"
            put "$s" sync.ratio "$(awk '/^  sync  *:/ {
                for (i = 1; i < NF; i++) if ($i == "ratio") { print $(i + 1); exit } }' "$f")"
            put "$s" sync.rss "$(awk '/receiver RssAnon: peak/ { print $4; exit }' "$f")"
            put "$s" sync.rcpu "$(field "$f" '^  CPU during sync :' 6)"
            put "$s" sync.scpu "$(field "$f" '^  CPU during sync :' 11)"
            ;;
        latency)
            put "$s" lat.h2b.p50 "$(lat "$f" 'hub -> branch, exit' p50)"
            put "$s" lat.h2b.p99 "$(lat "$f" 'hub -> branch, exit' p99)"
            put "$s" lat.b2h.p50 "$(lat "$f" 'branch -> hub, exit' p50)"
            put "$s" lat.b2h.p99 "$(lat "$f" 'branch -> hub, exit' p99)"
            put "$s" lat.rtt.p50 "$(lat "$f" 'ZeroMQ CURVE RTT' p50)"
            put "$s" lat.rtt.p99 "$(lat "$f" 'ZeroMQ CURVE RTT' p99)"
            ;;
    esac
}

echo "compare: old $OLD, new $NEW; N=$N, latency $LAT_N writes per direction," \
    "$ROUNDS rounds of: $BENCHES" >&2
echo "machine: $(nproc) CPUs, load avg $(cut -d' ' -f1-3 /proc/loadavg) at start" >&2
t_start=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for b in $BENCHES; do
        for side in $order; do
            log=$LOGS/$b.$side.$round.log
            t0=$(date +%s)
            if run_bench "$b" "$side" "$log"; then
                collect "$b" "$side" "$log"
                echo "round $round/$ROUNDS: $b $side done in $(($(date +%s) - t0)) s" \
                    "(load avg $(cut -d' ' -f1 /proc/loadavg))" >&2
            else
                FAILED=1
                echo "round $round/$ROUNDS: $b $side FAILED (exit status in $log):" >&2
                tail -5 "$log" >&2
            fi
        done
    done
done

# --- the table --------------------------------------------------------------
# name, unit, better (hi/lo), kind (figure/limit/ratio), label
ROWS='load.rate records/s hi figure load:_branchsync_load
load.raw records/s hi limit load:_raw_LMDB
load.ratio x hi ratio load:_ratio_to_raw
xchg.export changes/s hi figure exchange:_export
xchg.import changes/s hi figure exchange:_import
xchg.both changes/s hi figure exchange:_export+import
xchg.raw records/s hi limit exchange:_raw_LMDB
xchg.ratio x hi ratio exchange:_export+import/raw
xchg.rss MiB lo figure exchange:_import_peak_RssAnon
xchg.excpu CPU_s lo figure exchange:_export_CPU
xchg.imcpu CPU_s lo figure exchange:_import_CPU
sync.rate changes/s hi figure sync_(daemons):_catch-up
sync.raw records/s hi limit sync:_raw_LMDB
sync.ratio x hi ratio sync:_catch-up/raw
sync.rss MiB lo figure sync:_receiver_peak_RssAnon
sync.rcpu CPU_s lo figure sync:_receiver_CPU
sync.scpu CPU_s lo figure sync:_sender_CPU
lat.h2b.p50 ms lo figure latency:_hub->branch_p50
lat.h2b.p99 ms lo figure latency:_hub->branch_p99
lat.b2h.p50 ms lo figure latency:_branch->hub_p50
lat.b2h.p99 ms lo figure latency:_branch->hub_p99
lat.rtt.p50 ms lo limit latency:_ZeroMQ_CURVE_RTT_p50
lat.rtt.p99 ms lo limit latency:_ZeroMQ_CURVE_RTT_p99'

med() { # FIGURE SIDE: median of the values, "-" if none
    awk -v f="$1" -v s="$2" '$1 == s && $2 == f { print $3 }' "$FIG" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-";
            else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
runs() { awk -v f="$1" -v s="$2" '$1 == s && $2 == f { printf "%s%s", (n++ ? "/" : ""), $3 }' "$FIG"; }
# paired FIGURE: the median over rounds of (new - old) / old in %, each new
# run against the old run of the same round (back to back: same machine
# load), "-" if no round has both.
paired() {
    awk -v f="$1" '$2 == f { v[$1, $4] = $3; r[$4] = 1 }
        END { for (i in r) if (((("old", i) in v) && (("new", i) in v)) && v["old", i] != 0)
            print (v["new", i] - v["old", i]) / v["old", i] * 100 }' "$FIG" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%+.1f%%\n",
            (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

flagged=0
echo
echo "old: $OLD"
echo "new: $NEW"
echo "N=$N records, latency $LAT_N writes per direction, $ROUNDS interleaved rounds," \
    "$(( ($(date +%s) - t_start + 30) / 60 )) min; load avg at the end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %-10s %12s %12s %9s %9s  %s\n' figure unit "old median" "new median" change paired \
    "runs old | new"
noise=0 noise_ms=0
while read -r name unit better kind label; do
    o=$(med "$name" old) n=$(med "$name" new)
    [ "$o" = - ] && [ "$n" = - ] && continue
    chg=$(awk -v o="$o" -v n="$n" 'BEGIN { if (o == "-" || n == "-" || o == 0) print "-";
        else printf "%+.1f%%", (n - o) / o * 100 }')
    flag=
    if [ "$kind" != limit ] && [ "$chg" != - ]; then
        # CPU seconds come in ticks of 0.01 s: a difference of 2 ticks or
        # less is resolution, not change.
        worse=$(awk -v o="$o" -v n="$n" -v b="$better" -v t="$THR" -v u="$unit" 'BEGIN {
            d = (n - o) / o * 100; if (b == "lo") d = -d
            if (u == "CPU_s" && (n - o < 0 ? o - n : n - o) <= 0.0201) d = 0
            print (d < -t) ? 1 : 0 }')
        [ "$worse" = 1 ] && flag="WORSE (> $THR %)" && flagged=1
    fi
    if [ "$kind" = limit ]; then
        flag="(limit)"
        if [ "$chg" != - ]; then
            if [ "$unit" = ms ]; then
                noise_ms=$(awk -v a="$noise_ms" -v c="${chg%\%}" 'BEGIN {
                    c += 0; c = c < 0 ? -c : c; print (c > a) ? c : a }')
            else
                noise=$(awk -v a="$noise" -v c="${chg%\%}" 'BEGIN {
                    c += 0; c = c < 0 ? -c : c; print (c > a) ? c : a }')
            fi
        fi
    fi
    printf '%-34s %-10s %12s %12s %9s %9s  %s | %s %s\n' "${label//_/ }" "${unit//_/ }" "$o" "$n" \
        "$chg" "$(paired "$name")" "$(runs "$name" old)" "$(runs "$name" new)" "$flag"
done <<<"$ROWS"
echo "change: between the medians; paired: the median of the per-round changes (each new run" \
    "against the old run next to it).  Rates: higher is better; ms, MiB and CPU seconds: lower is" \
    "better.  A figure is flagged when the new median is worse than the old by more than $THR %" \
    "(CPU seconds: and by more than 0.02 s, two clock ticks)."
echo "noise: the machine's own limits (the same code for both builds) moved by up to $noise %" \
    "(raw LMDB) and $noise_ms % (ZeroMQ round trip) between the two medians in this comparison;" \
    "a change of that order is not evidence."
[ -n "${COMPARE_KEEP:-}" ] && echo "outputs of each run: $LOGS"
if [ "$FAILED" != 0 ]; then exit 1; fi
if [ "$flagged" != 0 ]; then exit 3; fi
exit 0
