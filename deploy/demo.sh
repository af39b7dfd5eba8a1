#!/usr/bin/env bash
# demo.sh - a live demo of a head office and two branches on 127.0.0.1.
#
#   bash deploy/demo.sh [BUILD_DIR]      (default: build)
#
# The head office founds the infobase and loads the catalog; Tallinn is
# linked online (changes travel in milliseconds), Tartu exchanges every 5 s
# and works offline for a while.  Both branches edit the same customer
# while apart: a conflict, resolved the same way everywhere.  Meanwhile the
# head office takes the catalog for itself: Tartu's offline price change is
# refused by rule everywhere, Tallinn's is refused at once.  At the end
# every office shows the same digest.  Everything lives in a temporary
# directory; the daemons are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bs="$PWD/$build/tools/branchsync"
bsd="$PWD/$build/node/branchsyncd"
[ -x "$bs" ] && [ -x "$bsd" ] || { echo "demo: build first (bash tools/bootstrap.sh build)" >&2; exit 1; }
work=$(mktemp -d /tmp/branchsync-demo.XXXXXX)
stop_all() {
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop_all EXIT

# A free base port on 127.0.0.1: three consecutive ports for the offices
# and, ten above, three for their HTTP APIs.
port=$(python3 -c 'import socket,random
for _ in range(200):
    p=random.randint(20000,60000)
    try:
        ss=[socket.socket() for _ in range(6)]
        [s.bind(("127.0.0.1",p+i+(7 if i>2 else 0))) for i,s in enumerate(ss)]
        [s.close() for s in ss]; print(p); break
    except OSError: pass')

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ branchsync -d %s %s\033[0m\n' "$1" "${*:2}"; "$bs" -d "$work/$1" "${@:2}"; }
# Poll (bounded) until all three digests agree.
converge() {
  for _ in $(seq 1 200); do
    a=$("$bs" -d "$work/head" digest); b=$("$bs" -d "$work/tallinn" digest); c=$("$bs" -d "$work/tartu" digest)
    [ "$a" = "$b" ] && [ "$b" = "$c" ] && return 0
    sleep 0.1
  done
  echo "demo: offices did not converge in 20 s" >&2; return 1
}

say "Three offices on 127.0.0.1 (head: hub; tallinn: online; tartu: every 5 s)"
bash deploy/three-offices.sh "$build" "$work" "$port"
run head peer ls

say "The head office loads the infobase"
run head load products deploy/sample/products.jsonl
run head load customers deploy/sample/customers.jsonl
run head collection invoices --policy priority
converge
run tallinn get products p003
run tartu get customers c001

say "Tartu goes offline and keeps working"
kill "$(cat "$work/tartu.pid")"; wait "$(cat "$work/tartu.pid")" 2>/dev/null || true; rm "$work/tartu.pid"
run head collection products --writers hub           # the head office owns the catalog now
run tartu put products p003 '{"price":9.99}'         # tartu has not heard: accepted here, for now
run tartu put invoices inv-tartu-1 '{"customer":"c001","product":"p003","qty":2,"total":535.58}'
run tartu put customers c001 '{"city":"Tartu","phone":"+372 5555 0100"}'

say "Meanwhile Tallinn edits the same customer: online, it reaches the head office at once"
t0=$(date +%s%N)
run tallinn put customers c001 '{"city":"Tallinn"}'
for _ in $(seq 1 200); do
  "$bs" -d "$work/head" get customers c001 | grep -q Tallinn && break; sleep 0.01
done
echo "(visible at the head office $(( ($(date +%s%N) - t0) / 1000000 )) ms after the put started)"
run head get customers c001

say "Tartu comes back; its schedule exchanges within 5 s"
"$bsd" -d "$work/tartu" 2>>"$work/tartu.log" & echo $! >"$work/tartu.pid"
converge
for n in head tallinn tartu; do run $n get customers c001; done
run head conflicts --all
run tartu get products p003                          # its offline price change was refused by rule
printf '\033[2m$ branchsync -d tallinn put products p003 {"price":1}\033[0m\n'
if "$bs" -d "$work/tallinn" put products p003 '{"price":1}'; then
  echo "demo: a branch wrote the catalog" >&2; exit 1
fi

say "Applications use the head office's HTTP API (docs/api.md)"
api="http://127.0.0.1:$((port + 10))"
token=$("$bs" -d "$work/head" api-token)
if command -v curl >/dev/null; then
  printf '\033[2m$ curl -H "Authorization: Bearer $TOKEN" %s/v1/collections/customers/records/c001\033[0m\n' "$api"
  curl -fsS -H "Authorization: Bearer $token" "$api/v1/collections/customers/records/c001"; echo
  printf '\033[2m$ curl %s/health\033[0m\n' "$api"    # 503 lists what doctor lists
  curl -sS -w ' (HTTP %{http_code})\n' "$api/health"
fi

say "Every office holds the same data"
for n in head tallinn tartu; do printf '%-8s ' $n; "$bs" -d "$work/$n" digest; done
for n in head tartu; do run $n status; done
run head log
echo "head office HTTP API: $api (token: branchsync -d $work/head api-token)"
say "The head office's web dashboard (branchsync dashboard)"
run head dashboard
say "demo complete"
# On a terminal, keep the offices up while someone looks at the dashboard.
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "The offices keep running: open the URL above; press Enter to stop them. " _ || true
fi
