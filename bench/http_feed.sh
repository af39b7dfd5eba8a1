#!/usr/bin/env bash
# bench/http_feed.sh - change feed latency: from a commit to the event
# that carries it on an open event stream (GET /v1/changes?feed=sse,
# docs/api.md).
#
#     bench/http_feed.sh [N]            (N changes per figure, default 200)
#
# Environment:
#   BUILD_DIR   CMake build directory (default: <repo>/build, Release)
#   BENCH_DIR   parent of the scratch directory (default: /tmp)
#
# Starts two daemons on free ports of 127.0.0.1: a head office and a
# branch paired `online` both ways.  A reader keeps one event stream open
# at the branch (reconnecting with Last-Event-ID when it ends).  Two figures, p50 and
# p99 of N changes each (bench/http_feed.py):
#   - local: an HTTP PUT at the branch; from the PUT's answer (its
#     transaction committed, at most the PUT's own time earlier, printed
#     too) to the event that carries it: the feed's own latency,
#     what a replicated commit at the branch also sees (the feed reads the
#     store, whoever wrote it);
#   - replicated: an HTTP PUT at the head office; from its answer (the head
#     office's commit) to the branch's event: the online push,
#     verify and apply at the branch, and the feed.
# The writes are spaced a random 0-50 ms apart.  An open feed is woken by
# each commit of its daemon (and polls every 25 ms for other processes'
# commits).  The daemons and the scratch directory are removed on exit.
set -euo pipefail

N=${1:-200}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
BSD=$BUILD/node/branchsyncd

case $N in '' | *[!0-9]* | 0) echo "usage: bench/http_feed.sh [N]" >&2; exit 2 ;; esac
[ -x "$BS" ] && [ -x "$BSD" ] || { echo "http_feed.sh: build first (cmake --build $BUILD)" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/bs-feed-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nodeid() { "$BS" -d "$work/$1" id --json | sed -n 's/.*"id": "\(.*\)".*/\1/p'; }

hp=$(freeport); bp=$(freeport); hh=$(freeport); bh=$(freeport)
"$BS" init -d "$work/head" --name head --role hub --listen "tcp://127.0.0.1:$hp" \
  --http "127.0.0.1:$hh" >/dev/null
"$BS" init -d "$work/tallinn" --name tallinn --listen "tcp://127.0.0.1:$bp" \
  --http "127.0.0.1:$bh" >/dev/null
"$BS" -d "$work/head" peer add tallinn "tcp://127.0.0.1:$bp" "$(nodeid tallinn)" --schedule online >/dev/null
"$BS" -d "$work/tallinn" peer add head "tcp://127.0.0.1:$hp" "$(nodeid head)" --schedule online >/dev/null
for n in head tallinn; do
  "$BSD" -d "$work/$n" 2>"$work/$n.log" &
  pids+=($!)
done
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$bh/health" >/dev/null 2>&1 && break
  sleep 0.05
done
"$BS" -d "$work/tallinn" sync head >/dev/null # joins the branch

python3 "$ROOT/bench/http_feed.py" "$N" \
  "http://127.0.0.1:$hh" "$("$BS" -d "$work/head" api-token)" \
  "http://127.0.0.1:$bh" "$("$BS" -d "$work/tallinn" api-token)"
