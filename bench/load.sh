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
#     scan excluded);
#   - CSV: the same records as CSV (same number texts), `load customers
#     FILE.csv --format csv --types balance:number,vip:bool` into another
#     fresh node, timed the same way; the two nodes' digests must be equal;
#   - dump: `dump customers --format csv` of the loaded node to /dev/null.
# Prints the rates (records/s), the ratios branchsync/raw (target >= 0.5,
# docs/performance.md) and CSV/JSON Lines (target >= 0.5, issue 11), the
# dump rate (target >= 500,000/s) and the store sizes.  The scratch directory is
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
CSV=$WORK/records.csv
python3 - "$DATA" "$CSV" <<'PY'
import csv, json, sys
keep = lambda s: s  # the number texts as they are, so both loads are equal
with open(sys.argv[1]) as f, open(sys.argv[2], "w", newline="") as o:
    w, cols = csv.writer(o, lineterminator="\n"), None
    for line in f:
        r = json.loads(line, parse_float=keep, parse_int=keep)
        if cols is None:
            cols = list(r)
            w.writerow(cols)
        w.writerow(["true" if r[c] is True else "false" if r[c] is False
                    else r[c] for c in cols])
PY
fs=$(df -T "$WORK" | awk 'NR==2 {print $2 " (" $1 ")"}')
echo "input: $(mib "$(fsize "$DATA")"), scratch: $WORK on $fs" >&2

bs_rates=() raw_rates=() ratios=() csv_rates=() csv_ratios=() dump_rates=()
# Run "$@" under the timeout; its seconds go to $WORK/secs.
timed() {
    local t0 t1
    t0=$(now)
    timeout "$TMO" "$@"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }' >"$WORK/secs"
}
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

    # the same records from CSV, into a fresh node
    csvnode=$WORK/csvnode
    rm -rf "$csvnode"
    "$BS" init -d "$csvnode" --name bench --role hub >/dev/null
    timed "$BS" -d "$csvnode" --json load customers "$CSV" --format csv \
        --types balance:number,vip:bool >/dev/null
    csv_s=$(cat "$WORK/secs")
    csv_rate=$(awk -v n="$N" -v s="$csv_s" 'BEGIN { printf "%.0f", n / s }')
    csv_ratio=$(awk -v a="$csv_rate" -v b="$bs_rate" 'BEGIN { printf "%.3f", a / b }')
    if [ "$("$BS" -d "$node" digest)" != "$("$BS" -d "$csvnode" digest)" ]; then
        echo "CSV and JSON Lines loads differ (digest)" >&2
        exit 1
    fi
    timed "$BS" -d "$node" dump customers --format csv >/dev/null
    dump_s=$(cat "$WORK/secs")
    dump_rate=$(awk -v n="$N" -v s="$dump_s" 'BEGIN { printf "%.0f", n / s }')
    csv_rates+=("$csv_rate") csv_ratios+=("$csv_ratio") dump_rates+=("$dump_rate")

    echo "run $run/$RUNS: N=$N"
    printf '  branchsync load : %10s records/s  (%s s, store %s)\n' \
        "$bs_rate" "$bs_s" "$(mib "$bs_size")"
    printf '  raw LMDB        : %10s records/s  (%s s, store %s)\n' \
        "$raw_rate" "$raw_s" "$(mib "$raw_size")"
    printf '  ratio branchsync/raw: %s (target >= 0.5)\n' "$ratio"
    printf '  load from CSV   : %10s records/s  (%s s; equal digest)\n' \
        "$csv_rate" "$csv_s"
    printf '  ratio CSV/JSON Lines: %s (target >= 0.5)\n' "$csv_ratio"
    printf '  dump as CSV     : %10s records/s  (%s s; target >= 500000/s)\n' \
        "$dump_rate" "$dump_s"
    rm -rf "$node" "$raw" "$csvnode"
done

if [ "$RUNS" -gt 1 ]; then
    echo "median of $RUNS runs: N=$N"
    printf '  branchsync load : %10s records/s\n' "$(median "${bs_rates[@]}")"
    printf '  raw LMDB        : %10s records/s\n' "$(median "${raw_rates[@]}")"
    printf '  ratio branchsync/raw: %s (median of the per-run ratios)\n' \
        "$(median "${ratios[@]}")"
    printf '  load from CSV   : %10s records/s\n' "$(median "${csv_rates[@]}")"
    printf '  ratio CSV/JSON Lines: %s (median of the per-run ratios)\n' \
        "$(median "${csv_ratios[@]}")"
    printf '  dump as CSV     : %10s records/s\n' "$(median "${dump_rates[@]}")"
fi
