#!/usr/bin/env bash
# bench/http_get.sh - the HTTP API's read rate: GET of one record with
# keep-alive, next to the same server answering a constant.
#
#     bench/http_get.sh [SECONDS] [CONNECTIONS]     (default 10 s, 16)
#
# Environment:
#   BUILD_DIR   CMake build directory (default: <repo>/build, Release)
#   BENCH_DIR   parent of the scratch directory (default: /tmp)
#
# Needs wrk (Debian package `wrk`).  Starts one branchsyncd on a free port
# of 127.0.0.1 with one record, then runs wrk (2 threads, CONNECTIONS
# keep-alive connections) against
#   - GET /v1/collections/bench/records/r1: token check, one LMDB read
#     transaction, the record as JSON;
#   - GET /v1/constant (an unknown path): token check and a constant JSON
#     404 answer, no LMDB: what the server itself costs.
# Prints requests/s of each.  The daemon and the scratch directory are
# removed on exit.  wrk and the daemon share the machine's cores.
set -euo pipefail

SECS=${1:-10}
CONNS=${2:-16}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
BSD=$BUILD/node/branchsyncd

command -v wrk >/dev/null || { echo "http_get.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -x "$BS" ] && [ -x "$BSD" ] || { echo "http_get.sh: build first (cmake --build $BUILD)" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/bs-http-bench.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BS" init -d "$work/n" --name bench --role hub --http "127.0.0.1:$port" >/dev/null
"$BS" -d "$work/n" put bench r1 '{"name":"Acme","city":"Tallinn","vip":true,"n":42}' >/dev/null
token=$("$BS" -d "$work/n" api-token)
"$BSD" -d "$work/n" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.05
done

rate() { # rate PATH: requests/s that wrk reports
  wrk -t2 -c"$CONNS" -d"${SECS}s" -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port$1" | awk '/^Requests\/sec:/ {print $2}'
}

curl -fsS -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/v1/collections/bench/records/r1" >/dev/null
get=$(rate /v1/collections/bench/records/r1)
const=$(rate /v1/constant)
printf 'GET one record (keep-alive, %s connections, %s s): %s requests/s\n' "$CONNS" "$SECS" "$get"
printf 'same server, constant answer:                   %s requests/s\n' "$const"
