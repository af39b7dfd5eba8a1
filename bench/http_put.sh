#!/usr/bin/env bash
# bench/http_put.sh - the HTTP API's write rate with group commit:
# acknowledged single-record PUTs per second at 1, 8 and 64 concurrent
# clients, next to the CLI's `put` loop and a raw single-put durable LMDB
# transaction.
#
#     bench/http_put.sh [SECONDS] [CLI_PUTS]     (default 10 s, 200)
#
# Environment:
#   BUILD_DIR   CMake build directory (default: <repo>/build, Release)
#   BENCH_DIR   parent of the scratch directory (default: /tmp; it must
#               be on the disk you measure: fsync is the cost)
#
# Needs wrk (Debian package `wrk`).  Starts one branchsyncd on a free port
# of 127.0.0.1 and runs wrk (bench/http_put.lua: PUT of a new record per
# request, keep-alive) for SECONDS at each client count.  Every PUT is
# answered 200 only once its transaction is committed durably; any other
# answer fails the run.  Then, with the daemon stopped:
#   - cli: CLI_PUTS `branchsync put` processes one after another;
#   - raw: build/bench/bench_lmdb_raw --single, one durable LMDB
#     transaction of one mdb_put each (what one fsync per write allows).
# The daemon and the scratch directory are removed on exit.  wrk and the
# daemon share the machine's cores.
set -euo pipefail

SECS=${1:-10}
CLI_PUTS=${2:-200}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
BSD=$BUILD/node/branchsyncd
RAW=$BUILD/bench/bench_lmdb_raw

command -v wrk >/dev/null || { echo "http_put.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -x "$BS" ] && [ -x "$BSD" ] && [ -x "$RAW" ] || { echo "http_put.sh: build first (cmake --build $BUILD)" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/bs-http-put.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BS" init -d "$work/n" --name bench --role hub --http "127.0.0.1:$port" >/dev/null
printf '\n[http]\nmax_connections = 128\nmax_connections_per_ip = 128\n' >>"$work/n/branchsync.conf"
BS_TOKEN=$("$BS" -d "$work/n" api-token)
export BS_TOKEN
"$BSD" -d "$work/n" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.05
done

metric() { # metric NAME: its value in /metrics
  curl -fsS "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

put_rate() { # put_rate CONNECTIONS: acknowledged PUTs/s
  local c=$1 t out b0 b1 w0 w1
  t=$((c < 2 ? 1 : 2))
  b0=$(metric branchsync_http_write_batches_total)
  w0=$(metric branchsync_http_writes_total)
  out=$(wrk -t"$t" -c"$c" -d"${SECS}s" -s "$ROOT/bench/http_put.lua" \
    "http://127.0.0.1:$port/")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "http_put.sh: errors at $c connections:" >&2
    echo "$out" >&2
    exit 1
  fi
  b1=$(metric branchsync_http_write_batches_total)
  w1=$(metric branchsync_http_writes_total)
  printf 'HTTP PUT, %2d connections (%s s): %8s writes/s, %s writes in %s transactions\n' \
    "$c" "$SECS" "$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")" \
    "$((w1 - w0))" "$((b1 - b0))"
}

for c in 1 8 64; do
  put_rate "$c"
done

kill "$pid" && wait "$pid" 2>/dev/null || true
pid=
t0=$(date +%s.%N)
for i in $(seq 1 "$CLI_PUTS"); do
  "$BS" -d "$work/n" put bench "cli$i" '{"name":"Acme","city":"Tallinn","vip":true,"n":42}' >/dev/null
done
t1=$(date +%s.%N)
printf 'CLI put loop (%s processes):         %8.0f writes/s\n' "$CLI_PUTS" \
  "$(echo "$CLI_PUTS / ($t1 - $t0)" | bc -l)"
raw=$("$RAW" --single 2000 "$work/raw" | awk -F= '$1 == "transactions_per_s" {print $2}')
printf 'raw LMDB, one durable txn per put:  %8s writes/s\n' "$raw"
