#!/usr/bin/env bash
# bench/repl/sync.sh - network catch-up of N changes over loopback TCP with
# CURVE, against raw LMDB inserts of the same N records; peak anonymous
# memory of the receiving process.
#
#     bench/repl/sync.sh [N]           (N records, default 1000000)
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BENCH_RUNS,
# BENCH_TIMEOUT, BUILD_DIR, BENCH_SEED), plus
#   SYNC_MODES   which receivers to measure (default "daemon direct"):
#                daemon: both daemons run; `branchsync -d BRANCH sync head`
#                        asks the branch's daemon, which makes the exchange;
#                        the receiver sampled is the branch's branchsyncd;
#                direct: only the hub's daemon runs; the same command makes
#                        the exchange itself (no daemon on the branch); the
#                        receiver sampled is that branchsync process.
#
# Once (not timed): N records (bench/gen_records.py); a hub node loaded
# with them (`load`); the hub's branchsyncd, listening on 127.0.0.1.
# Per run and mode: a fresh branch node paired both ways with the hub
# (manual schedule), then timed from the shell: `branchsync -d BRANCH sync
# head` until it exits 0 (the branch joins on this exchange).  Meanwhile
# RssAnon of the receiver (and of the hub's daemon, the sender) is read
# from /proc/PID/status every 100 ms; the peak is kept.  Then (not timed)
# both digests must be equal, and build/bench/bench_lmdb_raw gives the raw
# limit on the same records.  Prints changes/s, ratio to raw (targets:
# >= 100,000 changes/s and >= 0.5 x raw) and the peak RssAnon (target
# < 100 MiB, and no higher for 2M than for 1M).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-1000000}
MODES=${SYNC_MODES:-daemon direct}
case $N in '' | *[!0-9]*) echo "usage: bench/repl/sync.sh [N]" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "N must be > 0" >&2; exit 2; }
for m in $MODES; do
    case $m in daemon | direct) ;; *) echo "SYNC_MODES: daemon and/or direct" >&2; exit 2 ;; esac
done

repl_build branchsync branchsyncd bench_lmdb_raw
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
daemon_start "$HUB" "$WORK/hub.log"
HUB_PID=$DAEMON_PID

declare -A rates ratios peaks
for run in $(seq 1 "$RUNS"); do
    for mode in $MODES; do
        name=br$run$mode BR=$WORK/br$run$mode
        br_port=$(free_port)
        node_init "$BR" "$name" branch "$br_port"
        pair "$HUB" head "$hub_port" "$BR" "$name" "$br_port"
        rm -f "$WORK/stop" "$WORK/rss.recv" "$WORK/rss.send"
        sync # flush what setup wrote

        if [ "$mode" = daemon ]; then
            daemon_start "$BR" "$WORK/$name.log"
            BR_PID=$DAEMON_PID
            rss_sampler "$BR_PID" "$WORK/rss.recv" "$WORK/stop" &
            rs_recv=$!
            rss_sampler "$HUB_PID" "$WORK/rss.send" "$WORK/stop" &
            rs_send=$!
            c_recv=$(proc_cpu "$BR_PID") c_send=$(proc_cpu "$HUB_PID")
            t0=$(now)
            timeout "$TMO" "$BS" -d "$BR" --json sync head >"$WORK/sync.json"
            t1=$(now)
            c_recv=$(awk -v a="$c_recv" -v b="$(proc_cpu "$BR_PID")" 'BEGIN { printf "%.2f", b - a }')
            c_send=$(awk -v a="$c_send" -v b="$(proc_cpu "$HUB_PID")" 'BEGIN { printf "%.2f", b - a }')
            recv_what="branch branchsyncd (pid $BR_PID)"
        else
            rss_sampler "$HUB_PID" "$WORK/rss.send" "$WORK/stop" &
            rs_send=$!
            c_send=$(proc_cpu "$HUB_PID")
            children_cpu c_recv
            t0=$(now)
            "$BS" -d "$BR" --json sync head >"$WORK/sync.json" &
            cli=$!
            # The sampler of the CLI also bounds it: after TMO s it is killed.
            (rss_sampler "$cli" "$WORK/rss.recv" "$WORK/stop" ||
                kill -TERM "$cli" 2>/dev/null || true) &
            rs_recv=$!
            rc=0
            wait "$cli" || rc=$?
            t1=$(now)
            children_cpu c1
            c_recv=$(awk -v a="$c_recv" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
            c_send=$(awk -v a="$c_send" -v b="$(proc_cpu "$HUB_PID")" 'BEGIN { printf "%.2f", b - a }')
            [ "$rc" = 0 ] || { echo "sync exited $rc" >&2; exit 1; }
            recv_what="branchsync sync, direct (pid $cli)"
        fi
        touch "$WORK/stop"
        wait "$rs_recv" "$rs_send" || true
        grep -q '"via_daemon": *'"$([ "$mode" = daemon ] && echo true || echo false)" \
            "$WORK/sync.json" || { echo "unexpected sync path:" >&2; cat "$WORK/sync.json" >&2; exit 1; }
        changes=$(sed -n 's/^ *"changes": *\([0-9]*\).*/\1/p' "$WORK/sync.json")
        sync_s=$(elapsed "$t0" "$t1")
        r=$(rate "$changes" "$sync_s")
        read -r recv_peak_kb recv_first_kb recv_samples < <(sed 's/[a-z_]*=//g' "$WORK/rss.recv")
        read -r send_peak_kb send_first_kb _ < <(sed 's/[a-z_]*=//g' "$WORK/rss.send")
        [ "$mode" = daemon ] && daemon_stop "$BR_PID"

        dh=$("$BS" -d "$HUB" digest) db=$("$BS" -d "$BR" digest)
        if [ "$dh" != "$db" ]; then
            echo "run $run ($mode): digests differ: hub $dh, branch $db" >&2
            exit 1
        fi
        raw_lmdb "$DATA" "$WORK/raw" "$WORK/raw.out"
        q=$(ratio "$r" "$RAW_RATE")
        rates[$mode]+="$r " ratios[$mode]+="$q " peaks[$mode]+="$recv_peak_kb "

        echo "run $run/$RUNS, $mode: N=$N records, $changes changes applied"
        printf '  sync            : %10s changes/s  (%s s)  ratio %s (targets >= 100000/s, >= 0.5)\n' \
            "$r" "$sync_s" "$q"
        printf '  CPU during sync : receiver %s s, sender (hub branchsyncd) %s s\n' "$c_recv" "$c_send"
        printf '  raw LMDB        : %10s records/s  (%s s)\n' "$RAW_RATE" "$RAW_S"
        printf '  receiver RssAnon: peak %s MiB (first sample %s MiB, %s samples): %s\n' \
            "$(kib2mib "$recv_peak_kb")" "$(kib2mib "$recv_first_kb")" "$recv_samples" "$recv_what"
        printf '  sender RssAnon  : peak %s MiB (first sample %s MiB): hub branchsyncd\n' \
            "$(kib2mib "$send_peak_kb")" "$(kib2mib "$send_first_kb")"
        rm -rf "$BR"
    done
done

if [ "$RUNS" -gt 1 ]; then
    for mode in $MODES; do
        # shellcheck disable=SC2086
        printf 'median of %s runs, %s: %s changes/s, ratio %s, receiver peak RssAnon %s MiB\n' \
            "$RUNS" "$mode" "$(median ${rates[$mode]})" "$(median ${ratios[$mode]})" \
            "$(kib2mib "$(median ${peaks[$mode]})")"
    done
fi
grep -E 'warn|error' "$WORK"/*.log >&2 || true
