#!/usr/bin/env bash
# bench/repl/exchange.sh - offline exchange (export + import) of N changes
# between two nodes, against raw LMDB inserts of the same N records.
#
#     bench/repl/exchange.sh [N]       (N records, default 1000000)
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BENCH_RUNS,
# BENCH_TIMEOUT, BUILD_DIR, BENCH_SEED).
#
# Once (not timed): N records with bench/gen_records.py; a hub node; its
# `load customers FILE` of the N records.
# Per run:
#   - a fresh branch node; hub and branch pair with each other (manual
#     schedule, listen addresses on 127.0.0.1 but no daemon: no traffic);
#   - timed: `branchsync -d HUB export BRANCH FILE` (the whole process);
#     (the timed commands run in the background with a RssAnon sampler;
#     each is timed from just before its start to just after its exit, so
#     the times include up to ~2 ms of job control, not the sampler's last
#     100 ms sleep)
#   - timed: `branchsync -d BRANCH import FILE` (the whole process; the
#     branch joins the infobase on this import);
#   - not timed: `digest` on both nodes must be equal;
#   - raw limit: build/bench/bench_lmdb_raw on the same records (one txn of
#     mdb_put in file order + durable commit, timed inside the program).
# The peak RssAnon of each process (sampled every 100 ms) is printed too.
# Prints changes/s of export, import and export+import (changes = what the
# import reports applying: the N records plus the hub's membership changes),
# the raw rate and each ratio (target: export+import >= 0.5 x raw).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-1000000}
case $N in '' | *[!0-9]*) echo "usage: bench/repl/exchange.sh [N]" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "N must be > 0" >&2; exit 2; }

repl_build branchsync bench_lmdb_raw
# input 100 B, 2 stores ~700 B each, file ~170 B, raw ~200 B per record
repl_workdir $((N * 5 / 2 + 65536))
machine_line >&2

DATA=$WORK/records.jsonl
gen_data "$N" "$DATA"

HUB=$WORK/hub
hub_port=$(free_port)
node_init "$HUB" head hub "$hub_port"
t0=$(now)
timeout "$TMO" "$BS" -d "$HUB" load customers "$DATA" >/dev/null 2>&1
t1=$(now)
echo "hub loaded $N records in $(elapsed "$t0" "$t1") s (not part of the figures)" >&2

ex_rates=() im_rates=() both_rates=() raw_rates=() r_ex=() r_im=() r_both=()
for run in $(seq 1 "$RUNS"); do
    BR=$WORK/br$run FILE=$WORK/x$run.bsx
    br_port=$(free_port)
    node_init "$BR" "br$run" branch "$br_port"
    pair "$HUB" head "$hub_port" "$BR" "br$run" "$br_port"

    sync # flush what setup wrote, so it does not land in the timed part
    run_sampled "$WORK/rss.export" "$BS" -d "$HUB" export "br$run" "$FILE" >/dev/null
    ex_s=$RUN_S ex_cpu=$RUN_CPU
    run_sampled "$WORK/rss.import" "$BS" -d "$BR" --json import "$FILE" >"$WORK/import.json"
    im_s=$RUN_S im_cpu=$RUN_CPU
    read -r ex_peak _ < <(sed 's/[a-z_]*=//g' "$WORK/rss.export")
    read -r im_peak _ < <(sed 's/[a-z_]*=//g' "$WORK/rss.import")
    changes=$(sed -n 's/^ *"changes": *\([0-9]*\).*/\1/p' "$WORK/import.json")
    both_s=$(awk -v a="$ex_s" -v b="$im_s" 'BEGIN { printf "%.3f", a + b }')
    fbytes=$(fsize "$FILE")

    dh=$("$BS" -d "$HUB" digest) db=$("$BS" -d "$BR" digest)
    if [ "$dh" != "$db" ]; then
        echo "run $run: digests differ after import: hub $dh, branch $db" >&2
        exit 1
    fi

    raw_lmdb "$DATA" "$WORK/raw" "$WORK/raw.out"

    ex=$(rate "$changes" "$ex_s") im=$(rate "$changes" "$im_s") both=$(rate "$changes" "$both_s")
    ex_rates+=("$ex") im_rates+=("$im") both_rates+=("$both") raw_rates+=("$RAW_RATE")
    r_ex+=("$(ratio "$ex" "$RAW_RATE")") r_im+=("$(ratio "$im" "$RAW_RATE")")
    r_both+=("$(ratio "$both" "$RAW_RATE")")

    echo "run $run/$RUNS: N=$N records, $changes changes, file $(mib "$fbytes")"
    printf '  export          : %10s changes/s  (%s s, CPU %s s)  ratio %s\n' "$ex" "$ex_s" "$ex_cpu" "${r_ex[-1]}"
    printf '  import          : %10s changes/s  (%s s, CPU %s s)  ratio %s\n' "$im" "$im_s" "$im_cpu" "${r_im[-1]}"
    printf '  export+import   : %10s changes/s  (%s s)  ratio %s (target >= 0.5)\n' \
        "$both" "$both_s" "${r_both[-1]}"
    printf '  raw LMDB        : %10s records/s  (%s s)\n' "$RAW_RATE" "$RAW_S"
    printf '  peak RssAnon: export %s MiB, import %s MiB\n' "$(kib2mib "$ex_peak")" "$(kib2mib "$im_peak")"
    printf '  branch store %s, digests equal\n' "$(mib "$(fsize "$BR/store/data.mdb")")"
    rm -rf "$BR" "$FILE"
done

if [ "$RUNS" -gt 1 ]; then
    echo "median of $RUNS runs: N=$N"
    printf '  export          : %10s changes/s  ratio %s\n' "$(median "${ex_rates[@]}")" "$(median "${r_ex[@]}")"
    printf '  import          : %10s changes/s  ratio %s\n' "$(median "${im_rates[@]}")" "$(median "${r_im[@]}")"
    printf '  export+import   : %10s changes/s  ratio %s\n' "$(median "${both_rates[@]}")" "$(median "${r_both[@]}")"
    printf '  raw LMDB        : %10s records/s\n' "$(median "${raw_rates[@]}")"
fi
