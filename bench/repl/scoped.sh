#!/usr/bin/env bash
# bench/repl/scoped.sh - scoped export (issue 9 item 2): a branch that owns
# 10 % of N records of an owner-scoped collection, against raw LMDB
# inserts of the records sent.
#
#     bench/repl/scoped.sh [N] [--seed] [--all]   (N records, default 1000000)
#
# --seed: the hub exports with `export --seed` (snapshot bootstrap, issue
# 12 item 3): the branch's records as snapshots, not the history.
# --all: every record is the branch's (a bootstrap of all N records).
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BENCH_RUNS,
# BENCH_TIMEOUT, BUILD_DIR, BENCH_SEED).
#
# Once (not timed): N records with bench/gen_records.py, each given an
# "office": every tenth names the branch (`br`), the others one of nine
# other offices; a hub node that declares `collection customers --scope
# owner --owner-field office` and loads them.
# Per run:
#   - a fresh branch node `br`, paired with the hub (no daemon), whose
#     first (empty) file the hub imports: its envelope announces the set
#     summaries the branch takes (protocol.md 2.10);
#   - timed: `branchsync -d HUB export br FILE` (the whole process: every
#     set of the hub's stream is read, checked and filtered for br, which
#     is entitled to a tenth of the changes);
#   - timed: `branchsync -d BRANCH import FILE` (joins; applies the tenth,
#     verifies every omission against the signed routes, A7o);
#   - not timed: the branch must hold exactly the N/10 records named for it;
#   - raw limit: build/bench/bench_lmdb_raw on the N/10 records sent.
# Prints records sent/s of export, import and export+import (with the CPU
# seconds of export and import: the VM's shared disk moves the wall time),
# the raw rate for the records sent and each ratio (target: >= 0.5 x raw).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-1000000}
case $N in '' | *[!0-9]* | 0) echo "usage: bench/repl/scoped.sh [N] [--seed]" >&2; exit 2 ;; esac
SEED= ALL=
shift || true
for a in "$@"; do
    case $a in
    --seed) SEED=--seed ;;
    --all) ALL=1 ;;
    *) echo "usage: bench/repl/scoped.sh [N] [--seed] [--all]" >&2; exit 2 ;;
    esac
done

repl_build branchsync bench_lmdb_raw
repl_workdir $((N * 2 + 65536))
machine_line >&2

GEN=$WORK/gen.jsonl DATA=$WORK/records.jsonl SENT=$WORK/sent.jsonl
gen_data "$N" "$GEN"
# every tenth record is the branch's
awk -v all="$ALL" '{ o = (all || NR % 10 == 0) ? "br" : "office" (NR % 10);
       sub(/}$/, ",\"office\":\"" o "\"}"); print }' "$GEN" >"$DATA"
grep '"office":"br"' "$DATA" >"$SENT"
nsent=$(wc -l <"$SENT")
rm -f "$GEN"

HUB=$WORK/hub
hub_port=$(free_port)
node_init "$HUB" head hub "$hub_port"
"$BS" -d "$HUB" collection customers --scope owner --owner-field office >/dev/null
t0=$(now)
timeout "$TMO" "$BS" -d "$HUB" load customers "$DATA" >/dev/null 2>&1
t1=$(now)
echo "hub loaded $N records in $(elapsed "$t0" "$t1") s (not part of the figures)" >&2

for run in $(seq 1 "$RUNS"); do
    BR=$WORK/br FILE=$WORK/x$run.bsx
    br_port=$(free_port)
    node_init "$BR" br branch "$br_port"
    # a fresh branch each run: the hub forgets the last one first
    [ "$run" -gt 1 ] && "$BS" -d "$HUB" peer rm br >/dev/null
    pair "$HUB" head "$hub_port" "$BR" br "$br_port"
    # not timed: the branch's first file to the hub (empty: it has joined
    # nothing yet), whose envelope tells the hub what the branch takes
    # (set summaries, protocol.md 2.10); without it the hub sends what a
    # version-1 node reads
    "$BS" -d "$BR" export head "$WORK/hello.bsx" >/dev/null
    "$BS" -d "$HUB" import "$WORK/hello.bsx" >/dev/null

    sync
    run_sampled "$WORK/rss.export" "$BS" -d "$HUB" export br "$FILE" $SEED >/dev/null
    ex_s=$RUN_S ex_cpu=$RUN_CPU
    run_sampled "$WORK/rss.import" "$BS" -d "$BR" --json import "$FILE" >"$WORK/import.json"
    im_s=$RUN_S im_cpu=$RUN_CPU
    changes=$(sed -n 's/^ *"changes": *\([0-9]*\).*/\1/p' "$WORK/import.json")
    both_s=$(awk -v a="$ex_s" -v b="$im_s" 'BEGIN { printf "%.3f", a + b }')
    held=$("$BS" -d "$BR" ls customers | wc -l)
    if [ "$held" != "$nsent" ]; then
        echo "run $run: the branch holds $held records, want $nsent" >&2
        exit 1
    fi
    raw_lmdb "$SENT" "$WORK/raw" "$WORK/raw.out"
    ex=$(rate "$nsent" "$ex_s") im=$(rate "$nsent" "$im_s") both=$(rate "$nsent" "$both_s")
    echo "run $run/$RUNS: N=$N records, $nsent sent to br ($changes changes applied), file $(mib "$(fsize "$FILE")")"
    printf '  scoped export   : %10s records sent/s  (%s s, CPU %s s)  ratio %s (target >= 0.5)\n' "$ex" "$ex_s" "$ex_cpu" "$(ratio "$ex" "$RAW_RATE")"
    printf '  import          : %10s records/s       (%s s, CPU %s s)  ratio %s (target >= 0.5; a seed: >= 1.0)\n' "$im" "$im_s" "$im_cpu" "$(ratio "$im" "$RAW_RATE")"
    printf '  import RssAnon  : peak %s MiB (first sample %s MiB)\n' \
        "$(kib2mib "$(sed -n 's/^peak_kb=\([0-9]*\).*/\1/p' "$WORK/rss.import")")" \
        "$(kib2mib "$(sed -n 's/.*first_kb=\([0-9]*\).*/\1/p' "$WORK/rss.import")")"
    printf '  export+import   : %10s records/s       (%s s)  ratio %s\n' "$both" "$both_s" "$(ratio "$both" "$RAW_RATE")"
    printf '  raw LMDB        : %10s records/s       (%s s, the %s records sent)\n' "$RAW_RATE" "$RAW_S" "$nsent"
    rm -rf "$BR" "$FILE"
done
