# shellcheck shell=bash
# bench/repl/common.sh - shared helpers of the replication benchmarks.
# Sourced by exchange.sh, sync.sh and latency.sh; not run on its own.
#
# Environment (all optional):
#   BENCH_DIR      parent of the scratch directory (default: /tmp)
#   BENCH_RUNS     repetitions (default 1); medians printed when > 1
#   BENCH_TIMEOUT  seconds allowed for each timed command (default 1800)
#   BUILD_DIR      CMake build directory (default: <repo>/build)
#   BENCH_SEED     generator seed (default: gen_records.py's)
#   BENCH_CODE     label printed as the code under test (default: `git
#                  describe` of the build directory's source tree)
#
# Network: every node listens on 127.0.0.1 only, on ports the kernel hands
# out as free.  Every daemon started here is killed by its PID on exit, and
# the scratch directory is removed, on success, failure or Ctrl-C.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
BSD=$BUILD/node/branchsyncd
RAW=$BUILD/bench/bench_lmdb_raw
RUNS=${BENCH_RUNS:-1}
TMO=${BENCH_TIMEOUT:-1800}

case $RUNS in '' | *[!0-9]* | 0) echo "BENCH_RUNS: a number >= 1" >&2; exit 2 ;; esac
case $TMO in '' | *[!0-9]* | 0) echo "BENCH_TIMEOUT: seconds >= 1" >&2; exit 2 ;; esac

# --- build what is missing (Release) ----------------------------------------
# $@: the targets this benchmark needs.
repl_build() {
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    local t missing=0
    for t in "$@"; do
        case $t in
            branchsync) [ -x "$BS" ] || missing=1 ;;
            branchsyncd) [ -x "$BSD" ] || missing=1 ;;
            bench_lmdb_raw) [ -x "$RAW" ] || missing=1 ;;
            *) [ -x "$BUILD/bench/repl/$t" ] || missing=1 ;;
        esac
    done
    if [ "$missing" = 1 ]; then
        cmake --build "$BUILD" -j"$(nproc)" --target "$@" >/dev/null
    fi
    local btype
    btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
    [ "$btype" = Release ] ||
        echo "warning: $BUILD is a '${btype:-default}' build, not Release" >&2
}

# --- scratch directory, daemons, cleanup ------------------------------------
DAEMON_PIDS=()
WORK=
repl_cleanup() {
    local p i
    for p in "${DAEMON_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${DAEMON_PIDS[@]}"; do
        for i in $(seq 1 50); do # up to 5 s, then SIGKILL
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    DAEMON_PIDS=()
    [ -n "$WORK" ] && rm -rf "$WORK"
}

# $1: KiB of free space wanted in the scratch filesystem.
repl_workdir() {
    local parent=${BENCH_DIR:-/tmp} avail
    mkdir -p "$parent"
    avail=$(df -Pk "$parent" | awk 'NR==2 {print $4}')
    if [ "$avail" -lt "$1" ]; then
        echo "not enough space in $parent: ${avail} KiB free, want $1" >&2
        exit 1
    fi
    WORK=$(mktemp -d "$parent/bs-repl.XXXXXX")
    trap repl_cleanup EXIT
    trap 'exit 130' INT TERM
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
    print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
fsize() { stat -c %s "$1"; }

# A TCP port on 127.0.0.1 that is free right now, from 20000-31999:
# below the range the kernel hands out to outgoing connections (a port
# from there could be taken by a daemon's connection before the daemon
# meant to listen on it starts; tests/proc/proc_util.h does the same).
free_port() {
    python3 -c 'import random, socket
for _ in range(1000):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break'
}

# node_init DIR NAME ROLE PORT
node_init() {
    "$BS" init -d "$1" --name "$2" --role "$3" \
        --listen "tcp://127.0.0.1:$4" >/dev/null
}

# node_id DIR: the node ID printed by `branchsync id`.
node_id() { "$BS" -d "$1" --json id | sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p'; }

# pair A_DIR A_NAME A_PORT B_DIR B_NAME B_PORT [SCHEDULE]: A and B each add
# the other as a peer (A knows B as B_NAME, B knows A as A_NAME).
pair() {
    local ida idb sch=${7:-manual}
    ida=$(node_id "$1") idb=$(node_id "$4")
    if [ -z "$ida" ] || [ -z "$idb" ]; then echo "pair: no node ID" >&2; exit 1; fi
    "$BS" -d "$1" peer add "$5" "tcp://127.0.0.1:$6" "$idb" --schedule "$sch" >/dev/null
    "$BS" -d "$4" peer add "$2" "tcp://127.0.0.1:$3" "$ida" --schedule "$sch" >/dev/null
}

# daemon_start DIR LOG: start branchsyncd on DIR, wait until it listens and
# its control socket answers; sets DAEMON_PID.
daemon_start() {
    local i
    "$BSD" -d "$1" 2>"$2" &
    DAEMON_PID=$!
    DAEMON_PIDS+=("$DAEMON_PID")
    for i in $(seq 1 100); do # up to 10 s
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "branchsyncd on $1 died:" >&2
            cat "$2" >&2
            exit 1
        fi
        if grep -q 'listening on' "$2" 2>/dev/null &&
            [ -S "$1/control.sock" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "branchsyncd on $1 did not start in 10 s" >&2
    cat "$2" >&2
    exit 1
}

# daemon_stop PID: SIGTERM, wait up to 5 s, then SIGKILL.
daemon_stop() {
    local p=$1 i keep=()
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for i in "${DAEMON_PIDS[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    DAEMON_PIDS=("${keep[@]}")
}

# rss_sampler PID OUT STOPFILE: every 100 ms read RssAnon (kB) of PID from
# /proc/PID/status and keep the peak, until STOPFILE exists, PID is gone,
# or TMO seconds passed (at most TMO*10+10 samples).  Writes
# "peak_kb=... first_kb=... samples=..." to OUT.  Returns 1 when it stopped
# on the time bound (the caller may then kill PID).
rss_sampler() {
    local pid=$1 out=$2 stop=$3 peak=0 first='' n=0 k v _ max=$((TMO * 10 + 10))
    while [ "$n" -lt "$max" ] && [ ! -e "$stop" ]; do
        v=
        while read -r k v _; do
            [ "$k" = RssAnon: ] && break
        done 2>/dev/null <"/proc/$pid/status" || break
        [ -n "$v" ] || break
        [ -n "$first" ] || first=$v
        [ "$v" -gt "$peak" ] && peak=$v
        n=$((n + 1))
        sleep 0.1
    done
    echo "peak_kb=$peak first_kb=${first:-0} samples=$n" >"$out"
    [ "$n" -lt "$max" ] # status 1: stopped by the time bound
}

# CPU seconds (user + system) used so far by PID (from /proc/PID/stat).
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# children_cpu VAR: set VAR to the CPU seconds (user + system) of all the
# waited-for children of this shell so far.  (Not in $(...): a subshell
# has its own, empty, children times.)
children_cpu() {
    local f=${WORK:-/tmp}/.times.$$
    times >"$f"
    printf -v "$1" '%s' "$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) {
        split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.2f", t }' "$f")"
    rm -f "$f"
}

# run_sampled OUT CMD...: run CMD (stdout/stderr as the caller's) while
# rss_sampler watches it; kills it after TMO s.  Returns CMD's status, sets
# RUN_S to CMD's wall time (from just before its start to just after its
# exit: not the sampler's last sleep of up to 100 ms, which a time taken by
# the caller around run_sampled would include) and RUN_CPU to CMD's CPU
# seconds (user + system, all its threads).
run_sampled() {
    local out=$1 pid spid rc=0 t0 t1
    shift
    rm -f "$out.stop"
    t0=$(now)
    "$@" &
    pid=$!
    (rss_sampler "$pid" "$out" "$out.stop" || kill -TERM "$pid" 2>/dev/null || true) &
    spid=$!
    local c0 c1
    children_cpu c0
    wait "$pid" || rc=$?
    t1=$(now)
    RUN_S=$(elapsed "$t0" "$t1")
    children_cpu c1
    RUN_CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    touch "$out.stop"
    wait "$spid" || true
    rm -f "$out.stop"
    return "$rc"
}

kib2mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# rss_now PID: RssAnon of PID in kB.
rss_now() { awk '$1 == "RssAnon:" {print $2}' "/proc/$1/status"; }

# gen_data N FILE
gen_data() {
    echo "generating $1 records ..." >&2
    python3 "$ROOT/bench/gen_records.py" "$1" "$2" ${BENCH_SEED:+--seed "$BENCH_SEED"}
}

# raw_lmdb FILE DIR OUT: the raw-LMDB limit for the same records; sets
# RAW_RATE and RAW_S.
raw_lmdb() {
    rm -rf "$2"
    sync # write back what the measured step left dirty, so raw starts clean
    timeout "$TMO" "$RAW" "$1" "$2" >"$3"
    RAW_S=$(sed -n 's/^seconds=//p' "$3")
    RAW_RATE=$(sed -n 's/^records_per_s=//p' "$3")
    rm -rf "$2"
}

machine_line() {
    local cpu fs
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    fs=$(df -T "${WORK:-/tmp}" | awk 'NR==2 {print $2 " on " $1}')
    echo "machine: $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM," \
        "$(uname -sr), scratch $fs, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
    local src
    src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
    echo "code: ${BENCH_CODE:-$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)}" \
        "(sources $src), build $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt"))"
}
