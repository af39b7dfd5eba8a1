#!/usr/bin/env bash
# bench/load.sh - `branchsync load` against raw LMDB inserts of the same data.
#
#     bench/load.sh [N]            (N records, default 1000000)
#
# Environment:
#   BENCH_DIR      parent of the scratch directory (default: /tmp); both
#                  stores go there, on the same filesystem
#   BENCH_RUNS     repetitions, each into fresh stores (default 1); with
#                  more than one, the median of each figure is printed too
#   BENCH_TIMEOUT  seconds allowed for each timed command (default 1800)
#   BUILD_DIR      CMake build directory (default: <repo>/build)
#   BENCH_SEED     generator seed (default: gen_records.py's)
#
# Builds what is missing (Release), writes N JSON Lines records with random
# ids (bench/gen_records.py), then per run:
#   - branchsync: `init` a fresh hub node, then `load customers FILE`, timed
#     from the shell around the whole process (parse, check, write, fsync);
#   - raw: build/bench/bench_lmdb_raw on the same file: one txn of mdb_put in
#     file order + durable commit, timed inside the program (file read and id
#     scan excluded).
# Prints both rates (records/s), the ratio branchsync/raw (target >= 0.5,
# docs/performance.md) and the store sizes.  The scratch directory is
# removed on exit, including on failure or Ctrl-C.
set -euo pipefail

N=${1:-1000000}
RUNS=${BENCH_RUNS:-1}
TMO=${BENCH_TIMEOUT:-1800}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
RAW=$BUILD/bench/bench_lmdb_raw

case $N in '' | *[!0-9]*) echo "usage: bench/load.sh [N]" >&2; exit 2 ;; esac
case $RUNS in '' | *[!0-9]* | 0) echo "BENCH_RUNS: a number >= 1" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "N must be > 0" >&2; exit 2; }

# --- build if needed -------------------------------------------------------
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [ ! -x "$BS" ] || [ ! -x "$RAW" ]; then
    cmake --build "$BUILD" -j"$(nproc)" --target branchsync bench_lmdb_raw \
        >/dev/null
fi
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ "$btype" = Release ] ||
    echo "warning: $BUILD is a '${btype:-default}' build, not Release" >&2

# --- scratch directory -----------------------------------------------------
PARENT=${BENCH_DIR:-/tmp}
mkdir -p "$PARENT"
# Input ~100 B, branchsync store ~700 B and raw store ~200 B per record at
# N=1e6; ask for 1.5 KB per record to stay clear of a full disk.
need_kb=$(( N * 3 / 2 + 65536 ))
avail_kb=$(df -Pk "$PARENT" | awk 'NR==2 {print $4}')
if [ "$avail_kb" -lt "$need_kb" ]; then
    echo "not enough space in $PARENT: ${avail_kb} KiB free, want ${need_kb}" >&2
    exit 1
fi
WORK=$(mktemp -d "$PARENT/bs-bench.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
    print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'; }
fsize() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

DATA=$WORK/records.jsonl
echo "generating $N records ..." >&2
python3 "$ROOT/bench/gen_records.py" "$N" "$DATA" ${BENCH_SEED:+--seed "$BENCH_SEED"}
fs=$(df -T "$WORK" | awk 'NR==2 {print $2 " (" $1 ")"}')
echo "input: $(mib "$(fsize "$DATA")"), scratch: $WORK on $fs" >&2

bs_rates=() raw_rates=() ratios=()
for run in $(seq 1 "$RUNS"); do
    node=$WORK/node raw=$WORK/raw
    rm -rf "$node" "$raw"

    # branchsync load: the whole process, timed from the shell.
    "$BS" init -d "$node" --name bench --role hub >/dev/null
    t0=$(now)
    timeout "$TMO" "$BS" -d "$node" --json load customers "$DATA" \
        >"$WORK/bs.json"
    t1=$(now)
    bs_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    bs_rate=$(awk -v n="$N" -v s="$bs_s" 'BEGIN { printf "%.0f", n / s }')
    bs_size=$(fsize "$node/store/data.mdb")

    # raw LMDB: one txn, mdb_put in file order, durable commit.
    timeout "$TMO" "$RAW" "$DATA" "$raw" >"$WORK/raw.out"
    raw_s=$(sed -n 's/^seconds=//p' "$WORK/raw.out")
    raw_rate=$(sed -n 's/^records_per_s=//p' "$WORK/raw.out")
    raw_size=$(fsize "$raw/data.mdb")

    ratio=$(awk -v a="$bs_rate" -v b="$raw_rate" 'BEGIN { printf "%.3f", a / b }')
    bs_rates+=("$bs_rate") raw_rates+=("$raw_rate") ratios+=("$ratio")

    echo "run $run/$RUNS: N=$N"
    printf '  branchsync load : %10s records/s  (%s s, store %s)\n' \
        "$bs_rate" "$bs_s" "$(mib "$bs_size")"
    printf '  raw LMDB        : %10s records/s  (%s s, store %s)\n' \
        "$raw_rate" "$raw_s" "$(mib "$raw_size")"
    printf '  ratio branchsync/raw: %s (target >= 0.5)\n' "$ratio"
    rm -rf "$node" "$raw"
done

if [ "$RUNS" -gt 1 ]; then
    echo "median of $RUNS runs: N=$N"
    printf '  branchsync load : %10s records/s\n' "$(median "${bs_rates[@]}")"
    printf '  raw LMDB        : %10s records/s\n' "$(median "${raw_rates[@]}")"
    printf '  ratio branchsync/raw: %s (median of the per-run ratios)\n' \
        "$(median "${ratios[@]}")"
fi
