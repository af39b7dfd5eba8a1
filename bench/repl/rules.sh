#!/usr/bin/env bash
# bench/repl/rules.sh - what the access rules cost a receiver: the hub
# imports N records a branch wrote, once into a collection anyone writes and
# once into one declared `--writers owner --owner-field office` (every change
# judged, its owner noted), against raw LMDB inserts of the same N records.
#
#     bench/repl/rules.sh [N]          (N records, default 200000)
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BENCH_RUNS,
# BENCH_TIMEOUT, BUILD_DIR, BENCH_SEED, BENCH_CODE).
#
# Once (not timed): N records (bench/gen_records.py), each given
# "office": "branch".  Per run and kind (open, owner), in fresh nodes (no
# daemon, no traffic): a hub and a branch paired; for `owner` the hub
# declares the rule; the hub's file joins the branch; the branch `load`s
# the records and exports them to the hub; timed: the hub's `import` of
# that file (the whole process: pass 1 judges every set dry, pass 2 judges
# and applies).  Then (not timed) both digests must be equal, and the raw
# limit is measured on the same records.  Prints changes/s of each import,
# its ratio to raw, and owner/open.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-200000}
case $N in '' | *[!0-9]* | 0) echo "usage: bench/repl/rules.sh [N]" >&2; exit 2 ;; esac

repl_build branchsync bench_lmdb_raw
repl_workdir $((N * 4))
machine_line

gen_data "$N" "$WORK/plain.jsonl"
sed 's/^{/{"office":"branch",/' "$WORK/plain.jsonl" >"$WORK/owned.jsonl"

# one_run KIND: sets IMPORT_S.
one_run() {
    local kind=$1 h="$WORK/h" b="$WORK/b" t0 t1 dh db
    rm -rf "$h" "$b" "$WORK"/*.bsx
    node_init "$h" head hub "$(free_port)"
    node_init "$b" branch branch "$(free_port)"
    pair "$h" head 1 "$b" branch 2
    if [ "$kind" = owner ]; then
        "$BS" -d "$h" collection customers --writers owner --owner-field office >/dev/null
    fi
    "$BS" -d "$h" export branch "$WORK/join.bsx" >/dev/null
    "$BS" -d "$b" import "$WORK/join.bsx" >/dev/null
    "$BS" -d "$b" load customers "$WORK/owned.jsonl" >/dev/null
    "$BS" -d "$b" export head "$WORK/data.bsx" >/dev/null
    sync
    t0=$(now)
    timeout "$TMO" "$BS" -d "$h" import "$WORK/data.bsx" >/dev/null
    t1=$(now)
    IMPORT_S=$(elapsed "$t0" "$t1")
    dh=$("$BS" -d "$h" digest) db=$("$BS" -d "$b" digest)
    if [ "$dh" != "$db" ]; then
        echo "$kind: digests differ after import: hub $dh, branch $db" >&2
        exit 1
    fi
}

open_r=() owner_r=() raw_r=() ro=() rw=() rel=()
for run in $(seq 1 "$RUNS"); do
    one_run open
    open_rate=$(rate "$N" "$IMPORT_S")
    one_run owner
    owner_rate=$(rate "$N" "$IMPORT_S")
    raw_lmdb "$WORK/plain.jsonl" "$WORK/raw" "$WORK/raw.out"
    open_r+=("$open_rate") owner_r+=("$owner_rate") raw_r+=("$RAW_RATE")
    ro+=("$(ratio "$open_rate" "$RAW_RATE")") rw+=("$(ratio "$owner_rate" "$RAW_RATE")")
    rel+=("$(ratio "$owner_rate" "$open_rate")")
    echo "run $run: N=$N"
    printf '  import, open collection   : %10s changes/s  ratio %s\n' "$open_rate" "${ro[-1]}"
    printf '  import, writers=owner     : %10s changes/s  ratio %s\n' "$owner_rate" "${rw[-1]}"
    printf '  raw LMDB                  : %10s records/s  (limit)\n' "$RAW_RATE"
    printf '  owner / open              : %s\n' "${rel[-1]}"
done
if [ "$RUNS" -gt 1 ]; then
    echo "median of $RUNS runs:"
    printf '  import, open collection   : %10s changes/s  ratio %s\n' "$(median "${open_r[@]}")" "$(median "${ro[@]}")"
    printf '  import, writers=owner     : %10s changes/s  ratio %s\n' "$(median "${owner_r[@]}")" "$(median "${rw[@]}")"
    printf '  raw LMDB                  : %10s records/s  (limit)\n' "$(median "${raw_r[@]}")"
    printf '  owner / open              : %s\n' "$(median "${rel[@]}")"
fi
