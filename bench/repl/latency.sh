#!/usr/bin/env bash
# bench/repl/latency.sh - online propagation latency between two running
# nodes, next to the machine's ZeroMQ CURVE round trip.
#
#     bench/repl/latency.sh [N]        (writes per direction, default 1000)
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BUILD_DIR, BENCH_TIMEOUT),
# plus LATENCY_PRELOAD=M (default 0): load M records (gen_records.py) into
# the hub before the run, so that writes land in a store of that size;
# REPL_LATENCY_GAP_MS=G (default 0): pause G ms after each arrival, so that
# each write's exchange has ended before the next put (isolated writes).
#
# Sets up a hub and a branch (listening on 127.0.0.1, free ports), pairs
# them both ways with `--schedule online`, starts both branchsyncd, and
# waits until the branch has joined (its first online exchange).  Then:
#   - hub -> branch: build/bench/repl/repl_latency: N times, spawn
#     `branchsync -d HUB put lat ID {...}` and poll both stores in-process
#     (read-only LMDB txn every 100 us) until the put has exited and the
#     record is in the branch's store.  "exit": from the put's exit to the
#     record's arrival (0 if it arrived first); "from commit": from the
#     record's first appearance in the hub's store (the put's durable
#     commit) to its arrival; "put itself": spawn to exit of the put;
#   - branch -> hub: the same the other way;
#   - the limit: build/bench/repl/zmq_curve_rtt, 1000 round trips of 100 B
#     over tcp://127.0.0.1 with CURVE (DEALER/ROUTER, two processes).
# Prints p50/p90/p99/max (ms) of each (target: propagation p99 < 10 ms).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-1000}
PRE=${LATENCY_PRELOAD:-0}
case $N in '' | *[!0-9]*) echo "usage: bench/repl/latency.sh [N]" >&2; exit 2 ;; esac
case $PRE in '' | *[!0-9]*) echo "LATENCY_PRELOAD: a number" >&2; exit 2 ;; esac
if [ "$N" -lt 1 ] || [ "$N" -gt 100000 ]; then echo "N: 1 to 100000" >&2; exit 2; fi

LAT=$BUILD/bench/repl/repl_latency
RTT=$BUILD/bench/repl/zmq_curve_rtt
repl_build branchsync branchsyncd repl_latency zmq_curve_rtt
repl_workdir $((PRE * 2 + 65536))
machine_line >&2

HUB=$WORK/hub BR=$WORK/branch
hub_port=$(free_port) br_port=$(free_port)
node_init "$HUB" head hub "$hub_port"
node_init "$BR" branch branch "$br_port"
if [ "$PRE" -gt 0 ]; then
    gen_data "$PRE" "$WORK/records.jsonl"
    timeout "$TMO" "$BS" -d "$HUB" load customers "$WORK/records.jsonl" >/dev/null 2>&1
    rm -f "$WORK/records.jsonl"
fi
pair "$HUB" head "$hub_port" "$BR" branch "$br_port" online
daemon_start "$HUB" "$WORK/hub.log"
daemon_start "$BR" "$WORK/branch.log"

# Wait (up to 10 min) until the branch joined: its infobase is the hub's.
ib() { "$BS" -d "$1" status | sed -n 's/^infobase: *//p'; }
hub_ib=$(ib "$HUB")
for i in $(seq 1 6000); do
    [ "$(ib "$BR")" = "$hub_ib" ] && break
    [ "$i" = 6000 ] && { echo "the branch did not join in 10 min" >&2; cat "$WORK"/*.log >&2; exit 1; }
    sleep 0.1
done
sleep 1 # let the joining exchange finish on both sides

show() { # LABEL FILE
    local f=$2
    get() { sed -n "s/^$1=//p" "$f"; }
    printf '  %-22s p50 %7s  p90 %7s  p99 %7s  max %7s  mean %7s ms  (n=%s%s)\n' \
        "$1" "$(get "$3_p50_ms")" "$(get "$3_p90_ms")" "$(get "$3_p99_ms")" \
        "$(get "$3_max_ms")" "$(get "$3_mean_ms")" "$(get n)" \
        "$( [ "$(get lost)" ] && echo ", lost $(get lost)")"
}

echo "online propagation, $N writes per direction (store preloaded with $PRE records," \
    "gap ${REPL_LATENCY_GAP_MS:-0} ms after each arrival)"
rc=0
timeout "$TMO" "$LAT" "$BS" "$HUB" "$BR" "$N" h2b >"$WORK/h2b.out" || rc=1
show "hub -> branch, exit" "$WORK/h2b.out" latency
show "  from commit" "$WORK/h2b.out" commit
show "  (put itself)" "$WORK/h2b.out" put
timeout "$TMO" "$LAT" "$BS" "$BR" "$HUB" "$N" b2h >"$WORK/b2h.out" || rc=1
show "branch -> hub, exit" "$WORK/b2h.out" latency
show "  from commit" "$WORK/b2h.out" commit
show "  (put itself)" "$WORK/b2h.out" put
timeout 120 "$RTT" 1000 100 >"$WORK/rtt.out" || rc=1
printf '  %-22s p50 %7s  p90 %7s  p99 %7s  max %7s  mean %7s ms  (n=%s, %s B)\n' \
    "ZeroMQ CURVE RTT" "$(sed -n 's/^rtt_p50_ms=//p' "$WORK/rtt.out")" \
    "$(sed -n 's/^rtt_p90_ms=//p' "$WORK/rtt.out")" "$(sed -n 's/^rtt_p99_ms=//p' "$WORK/rtt.out")" \
    "$(sed -n 's/^rtt_max_ms=//p' "$WORK/rtt.out")" "$(sed -n 's/^rtt_mean_ms=//p' "$WORK/rtt.out")" \
    "$(sed -n 's/^n=//p' "$WORK/rtt.out")" "$(sed -n 's/^bytes=//p' "$WORK/rtt.out")"
echo "target: propagation p99 < 10 ms"
grep -E 'warn|error' "$WORK"/*.log >&2 || true
exit "$rc"
