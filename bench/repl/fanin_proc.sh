#!/usr/bin/env bash
# bench/repl/fanin_proc.sh - a head office with N branches as real
# daemons on this machine (issue 12 item 1): one exchange round over the
# network (CURVE sessions on 127.0.0.1), every branch syncing at once.
#
#     bench/repl/fanin_proc.sh [N]        (default 100)
#
# Environment: see common.sh; FANIN_CHANGES (per branch and for the
# catalog, default 1000), FANIN_PARALLEL (syncs at once, default N),
# FANIN_PERF (a file: `perf record` of the hub daemon during the round).
#
# FANIN_RESTART=1: afterwards, every branch's link to the hub is made
# `online`, the hub daemon is stopped, each branch writes one record while
# it is down, and the hub is started again: timed until the hub holds all
# N, with its ping timed meanwhile (issue 12, "Faults": branches
# reconnecting at once after a hub restart).
#
# Set up (not timed): a hub daemon and N branch daemons, paired, `orders`
# owner-scoped by `office`, every branch joined by one sync.  Each branch
# loads FANIN_CHANGES orders of its own and the hub as many records of a
# shared `catalog` (not timed).  The round: every branch runs `branchsync
# sync head` at once; timed until the last returns, and each sync on its
# own.  Meanwhile `branchsync status` at the hub is timed every 0.5 s.
# At the end the hub must hold every order and each branch the catalog.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-100}
C=${FANIN_CHANGES:-1000}
P=${FANIN_PARALLEL:-$N}
case $N in '' | *[!0-9]* | 0) echo "usage: fanin_proc.sh [N]" >&2; exit 2 ;; esac

repl_build branchsync branchsyncd
repl_workdir $((N * 20000 + 65536))
machine_line >&2
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ports: free now and not given to another node of this run (they listen
# only once their daemons start)
declare -A USED=()
new_port() {
    local p
    while :; do
        p=$(free_port)
        [ -z "${USED[$p]:-}" ] && break
    done
    USED[$p]=1
    PORT=$p
}

HUB=$WORK/hub
new_port
hub_port=$PORT
node_init "$HUB" head hub "$hub_port"
"$BS" -d "$HUB" collection orders --scope owner --owner-field office >/dev/null
hub_id=$(node_id "$HUB")
t0=$(now)
for i in $(seq 1 "$N"); do
    b=$(printf 'b%04d' "$i")
    new_port
    port=$PORT
    node_init "$WORK/$b" "$b" branch "$port"
    "$BS" -d "$HUB" peer add "$b" "tcp://127.0.0.1:$port" "$(node_id "$WORK/$b")" \
        --schedule manual >/dev/null
    "$BS" -d "$WORK/$b" peer add head "tcp://127.0.0.1:$hub_port" "$hub_id" \
        --hub --schedule manual >/dev/null
done
daemon_start "$HUB" "$WORK/hub.log"
for i in $(seq 1 "$N"); do
    b=$(printf 'b%04d' "$i")
    daemon_start "$WORK/$b" "$WORK/$b.log"
done
# join: every branch once (a few at a time)
seq 1 "$N" | xargs -P 8 -I{} sh -c \
    '"$0" -d "$1/$(printf "b%04d" {})" sync head >/dev/null' "$BS" "$WORK"
echo "set up $N branch daemons in $(elapsed "$t0" "$(now)") s" >&2

# the round's data (not timed)
for i in $(seq 1 "$N"); do
    b=$(printf 'b%04d' "$i")
    awk -v b="$b" -v c="$C" 'BEGIN { for (k = 0; k < c; k++)
        printf "{\"id\":\"%s-%d\",\"office\":\"%s\",\"qty\":%d}\n", b, k, b, k }' \
        >"$WORK/$b.jsonl"
    "$BS" -d "$WORK/$b" load orders "$WORK/$b.jsonl" >/dev/null 2>&1
done
awk -v c="$C" 'BEGIN { for (k = 0; k < c; k++)
    printf "{\"id\":\"item-%d\",\"price\":%d}\n", k, k }' >"$WORK/catalog.jsonl"
"$BS" -d "$HUB" load catalog "$WORK/catalog.jsonl" >/dev/null 2>&1

# status at the hub before the round (nothing running)
s0=$(now); "$BS" -d "$HUB" status >/dev/null; idle=$(elapsed "$s0" "$(now)")
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# status at the hub, timed, while the round runs
( while [ ! -f "$WORK/round.done" ]; do
      s=$(now); "$BS" -d "$HUB" status >/dev/null 2>&1 || true
      echo "$(elapsed "$s" "$(now)")" >>"$WORK/status.times"; sleep 0.5
  done ) &
STATUS_PID=$!
# the hub daemon's own answer, timed every 0.2 s during the round: a
# `ping` on its control socket (what the CLI asks a daemon that is slow
# to answer), served by its event loop.  A minimal ZMTP 3.0 DEALER in
# Python, so that nothing else is needed.
cat >"$WORK/zping.py" <<'PY'
import os, socket, struct, sys, time
def rd(s, n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b
def frame(s):
    f = rd(s, 1)[0]
    n = struct.unpack('>Q', rd(s, 8))[0] if f & 2 else rd(s, 1)[0]
    return f, rd(s, n)
def send(s, flags, body):
    s.sendall(bytes([flags, len(body)]) + body)
def ping(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(b'\xff' + b'\0' * 8 + b'\x7f\x03\x00' + b'NULL'.ljust(20, b'\0')
              + b'\0' * 32)
    rd(s, 64)
    send(s, 4, b'\x05READY\x0bSocket-Type' + struct.pack('>I', 6) + b'DEALER')
    while frame(s)[0] & 4 == 0:
        pass
    t0 = time.monotonic()
    send(s, 0, b'{"cmd":"ping"}')
    while frame(s)[0] & 5:
        pass
    dt = time.monotonic() - t0
    s.close()
    return dt
with open(sys.argv[2], 'a') as o:
    while not os.path.exists(sys.argv[3]):
        try:
            o.write('%.6f\n' % ping(sys.argv[1]))
        except Exception:
            o.write('nan\n')
        o.flush()
        time.sleep(0.2)
PY
python3 "$WORK/zping.py" "$HUB/control.sock" "$WORK/ping.times" "$WORK/round.done" &
PING_PID=$!
# FANIN_PERF=FILE: record the hub daemon's profile during the round
if [ -n "${FANIN_PERF:-}" ]; then
    perf record -q ${FANIN_PERF_OPTS:--g} -o "$FANIN_PERF" -p "${DAEMON_PIDS[0]}" 2>/dev/null &
    PERF_PID=$!
fi
t0=$(now)
seq 1 "$N" | xargs -P "$P" -I{} sh -c \
    's=$(date +%s.%N); "$0" -d "$1/$(printf "b%04d" {})" sync head >/dev/null 2>"$1/sync.{}.err" || echo "sync {} failed: $(cat "$1/sync.{}.err")" >&2; echo "$(date +%s.%N) $s" >>"$1/sync.times"' \
    "$BS" "$WORK"
round=$(elapsed "$t0" "$(now)")
if [ -n "${FANIN_PERF:-}" ]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
fi
touch "$WORK/round.done"
wait "$STATUS_PID" 2>/dev/null || true
wait "$PING_PID" 2>/dev/null || true

held=$("$BS" -d "$HUB" ls orders | wc -l)
want=$((N * C))
[ "$held" = "$want" ] || { echo "the hub holds $held orders, want $want" >&2; exit 1; }
got=$("$BS" -d "$WORK/b0001" ls catalog | wc -l)
[ "$got" = "$C" ] || { echo "b0001 holds $got catalog records, want $C" >&2; exit 1; }

hub_pid=${DAEMON_PIDS[0]}
echo "branches $N (real daemons), $C changes each way per branch, $P syncs at once"
echo "  load average as the round started: $load0; after it: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  round: $round s, wall, from the first sync started to the last returned"
awk '{ print ($1 - $2) * 1000 }' "$WORK/sync.times" | sort -g | awk '{ v[NR] = $1 }
    END { printf "  per-branch sync: p50 %.0f, p90 %.0f, p99 %.0f, max %.0f ms\n",
          v[int(NR * 0.5) + 1], v[int(NR * 0.9) + 1], v[int(NR * 0.99) + 1], v[NR] }'
sort -g "$WORK/status.times" | awk -v idle="$idle" '{ v[NR] = $1 * 1000 }
    END { printf "  `branchsync status` at the hub (%d times during the round): median %.0f, max %.0f ms (before the round: %.0f ms)\n",
          NR, v[int(NR / 2) + 1], v[NR], idle * 1000 }'
{ grep -v nan "$WORK/ping.times" || true; } | sort -g | awk -v lost="$(grep -c nan "$WORK/ping.times" || true)" '{ v[NR] = $1 * 1000 }
    END { printf "  ping at the hub daemon (control socket, %d times during the round): median %.1f, p99 %.1f, max %.1f ms, %d unanswered\n",
          NR, v[int(NR / 2) + 1], v[int(NR * 0.99) + 1], v[NR], lost }'
echo "  hub daemon: CPU $(proc_cpu "$hub_pid") s, RssAnon $(awk '/RssAnon/ { print $2 / 1024 " MiB" }' "/proc/$hub_pid/status"), open sockets $(ls -l "/proc/$hub_pid/fd" 2>/dev/null | grep -c socket)"

[ -n "${FANIN_RESTART:-}" ] || exit 0
for i in $(seq 1 "$N"); do
    "$BS" -d "$WORK/$(printf 'b%04d' "$i")" schedule head online >/dev/null
done
sleep 2 # the branches' daemons reload and run an exchange each
kill -TERM "$hub_pid"
for _ in $(seq 1 300); do kill -0 "$hub_pid" 2>/dev/null || break; sleep 0.1; done
seq 1 "$N" | xargs -P 8 -I{} sh -c \
    '"$0" -d "$1/$(printf "b%04d" {})" put restart "r{}" "{\"v\":1}" >/dev/null' "$BS" "$WORK"
rm -f "$WORK/round.done" "$WORK/ping.times"
t0=$(now)
daemon_start "$HUB" "$WORK/hub2.log"
python3 "$WORK/zping.py" "$HUB/control.sock" "$WORK/ping.times" "$WORK/round.done" &
PING_PID=$!
got=0
for _ in $(seq 1 1200); do # up to 10 min
    got=$({ "$BS" -d "$HUB" ls restart 2>/dev/null || true; } | wc -l)
    [ "$got" -ge "$N" ] && break
    sleep 0.5
done
back=$(elapsed "$t0" "$(now)")
touch "$WORK/round.done"
wait "$PING_PID" 2>/dev/null || true
echo "hub restart, $N online branches each with a write made while it was down:"
echo "  the hub holds $got of the $N writes $back s after it started (load average $(cut -d' ' -f1-3 /proc/loadavg))"
{ grep -v nan "$WORK/ping.times" || true; } | sort -g | awk -v lost="$(grep -c nan "$WORK/ping.times" || true)" '{ v[NR] = $1 * 1000 }
    END { printf "  ping at the hub daemon meanwhile (%d times): median %.1f, p99 %.1f, max %.1f ms, %d unanswered\n",
          NR, v[int(NR / 2) + 1], v[int(NR * 0.99) + 1], v[NR], lost }'
[ "$got" -ge "$N" ] || { echo "the hub holds $got of the $N writes" >&2; exit 1; }

