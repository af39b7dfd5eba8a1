#!/usr/bin/env bash
# three-offices.sh - create and start a head office and two branches on
# 127.0.0.1: head <-> tallinn online, tartu -> head every 5 s.
#
#   bash deploy/three-offices.sh BUILD_DIR WORK_DIR [BASE_PORT]
#
# Offices listen on BASE_PORT, +1 and +2; their HTTP APIs (docs/api.md) on
# BASE_PORT+10, +11 and +12, one port each.
#
# Leaves the daemons running; their PIDs are in WORK_DIR/*.pid and their
# logs in WORK_DIR/*.log.  Stop them with: kill $(cat WORK_DIR/*.pid)
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
work=${2:?work dir}
port=${3:-17400}
bs="$build/tools/branchsync"
bsd="$build/node/branchsyncd"
mkdir -p "$work"

nodeid() { "$bs" -d "$work/$1" id --json | sed -n 's/.*"id": "\(.*\)".*/\1/p'; }

"$bs" init -d "$work/head" --name head --role hub --listen "tcp://127.0.0.1:$port" \
  --http "127.0.0.1:$((port + 10))" >/dev/null
"$bs" init -d "$work/tallinn" --name tallinn --listen "tcp://127.0.0.1:$((port + 1))" \
  --http "127.0.0.1:$((port + 11))" >/dev/null
"$bs" init -d "$work/tartu" --name tartu --listen "tcp://127.0.0.1:$((port + 2))" \
  --http "127.0.0.1:$((port + 12))" >/dev/null
head=$(nodeid head); tallinn=$(nodeid tallinn); tartu=$(nodeid tartu)

# The head office pairs with (and so introduces) both branches.
"$bs" -d "$work/head" peer add tallinn "tcp://127.0.0.1:$((port + 1))" "$tallinn" --schedule online
"$bs" -d "$work/head" peer add tartu "tcp://127.0.0.1:$((port + 2))" "$tartu"
# Each branch pairs with the head office only.
"$bs" -d "$work/tallinn" peer add head "tcp://127.0.0.1:$port" "$head" --schedule online
"$bs" -d "$work/tartu" peer add head "tcp://127.0.0.1:$port" "$head" --schedule "every 5s"

for n in head tallinn tartu; do
  "$bsd" -d "$work/$n" 2>"$work/$n.log" &
  echo $! >"$work/$n.pid"
done
# Bounded wait until every daemon answers on its control socket.
for n in head tallinn tartu; do
  for _ in $(seq 1 100); do
    [ -S "$work/$n/control.sock" ] && break
    sleep 0.05
  done
done
echo "three offices running in $work (ports $port-$((port + 2)), HTTP $((port + 10))-$((port + 12)))"
echo "head office HTTP API: http://127.0.0.1:$((port + 10)) (token: branchsync -d $work/head api-token)"
