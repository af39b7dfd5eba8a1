#!/usr/bin/env bash
# bench/repl/conflicts.sh - a conflict-heavy offline exchange: two offices
# rewrite the same field of the same N records, then exchange files both
# ways; the conflicted imports against a conflict-free import of the same
# change sets, and a check that both offices recorded the same N conflicts.
#
#     bench/repl/conflicts.sh [N]      (N records, default 100000)
#
# Environment: see bench/repl/common.sh (BENCH_DIR, BENCH_RUNS,
# BENCH_TIMEOUT, BUILD_DIR, BENCH_SEED, BENCH_CODE), plus
#   CONFLICTS_FIELD     the field both offices rewrite (default city)
#   CONFLICTS_PROFILE   a directory: run each measured import under a
#                       profiler and leave its output there (the rates are
#                       then those of a profiled run, not figures)
#   CONFLICTS_PROFILER  perf (default: perf record -F 999 --call-graph
#                       dwarf) or callgrind (valgrind --tool=callgrind)
#
# Once (not timed): N records with bench/gen_records.py, and two rewrite
# files of the same N ids carrying only {"id", FIELD}: FIELD = "Hub office"
# for the hub, "Branch office" for the branch.
# Per run, in fresh nodes (three nodes on 127.0.0.1, no daemon, no traffic):
#   - a hub "head", a branch "branch" and a second branch "ref" (the
#     conflict-free reference), each branch paired with the hub;
#   - the hub `load`s the N records; it exports them to both branches, which
#     import them (this joins them; the branch's import is timed and printed
#     as the first exchange, new records); both branches export back to the
#     hub, which imports their acknowledgements, so no set travels twice;
#   - the hub `load`s its rewrite file, then the branch its own (the
#     branch's writes are later, so field-lww makes them win everywhere);
#   - exports, each timed: hub -> branch, branch -> hub, hub -> ref (the
#     same change sets as hub -> branch, to a node with no concurrent edit);
#   - imports, each timed (the whole process, `branchsync -d NODE import`),
#     interleaved so that machine load hits both kinds alike: the hub
#     imports the branch's file (N conflicts), ref imports the hub's file
#     (conflict-free: the same N records updated, no conflict), the branch
#     imports the hub's file (N conflicts);
#   - checks (not timed): each conflicted import reports N changes and N
#     conflicts, the conflict-free one N changes and 0 conflicts; hub and
#     branch digests are equal; `conflicts --all --json` of hub and branch
#     hold N conflicts each, all distinct, and are equal once the node-local
#     parts are set aside: `detected_ms` (receiver wall clock) is dropped
#     and the two `candidates` are put in origin order (each node lists the
#     incoming write first, docs/storage.md 3.5);
#   - a second round (timed, printed apart): the branch acknowledges, the
#     hub rewrites FIELD again ("Hub office, again": it has seen the
#     branch's writes, so nothing is concurrent) and the branch imports it:
#     N updates and no conflict, like ref's import, but into a node whose
#     register now holds N (resolved) conflicts;
#   - raw LMDB inserts of the N records (build/bench/bench_lmdb_raw), for
#     the machine's write limit in the same run.
# Prints conflicted records/s (each side, and both together: 2N / the sum
# of the two import times), conflict-free records/s, their ratio (target
# >= 0.5), the same ratio in CPU seconds, the second round's rate and its
# ratio to the conflict-free one, and a summary line.  Exits 1 when a check
# fails.  The scratch directory is removed on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${1:-100000}
FIELD=${CONFLICTS_FIELD:-city}
PROF=${CONFLICTS_PROFILE:-}
PROFILER=${CONFLICTS_PROFILER:-perf}
case $N in '' | *[!0-9]*) echo "usage: bench/repl/conflicts.sh [N]" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "N must be > 0" >&2; exit 2; }
case $FIELD in id | '' | *[!a-z_]*) echo "CONFLICTS_FIELD: a field name of the records, not id" >&2; exit 2 ;; esac
if [ -n "$PROF" ]; then
    case $PROFILER in
        perf) command -v perf >/dev/null || { echo "perf not found" >&2; exit 1; } ;;
        callgrind) command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; } ;;
        *) echo "CONFLICTS_PROFILER: perf or callgrind" >&2; exit 2 ;;
    esac
    mkdir -p "$PROF"
    PROF=$(cd "$PROF" && pwd)
fi

repl_build branchsync bench_lmdb_raw
# per record: input ~100 B + 2 rewrite files ~50 B; 3 stores, the two
# conflicted ones ~2.5 KB with their conflicts; 4 exchange files ~150 B;
# the two `conflicts --json` listings ~700 B each and their normal forms.
repl_workdir $((N * 10 + 65536))
machine_line >&2

DATA=$WORK/records.jsonl
gen_data "$N" "$DATA"
# The same ids, only FIELD, one value per office.
sed -E 's/^\{"id":"([^"]*)".*/{"id":"\1","'"$FIELD"'":"Hub office"}/' "$DATA" >"$WORK/hub.jsonl"
sed -E 's/^\{"id":"([^"]*)".*/{"id":"\1","'"$FIELD"'":"Branch office"}/' "$DATA" >"$WORK/branch.jsonl"
sed -E 's/^\{"id":"([^"]*)".*/{"id":"\1","'"$FIELD"'":"Hub office, again"}/' "$DATA" >"$WORK/hub2.jsonl"
[ "$(grep -c '"Hub office"' "$WORK/hub.jsonl")" = "$N" ] ||
    { echo "rewrite file: not N lines with the new value" >&2; exit 1; }

# jnum KEY FILE: the integer value of "KEY" in a --json output.
jnum() { sed -n 's/^ *"'"$1"'": *\([0-9]*\).*/\1/p' "$2" | head -1; }

# quiet CMD...: run CMD (bounded by TMO), output kept in $WORK/last.out.
quiet() {
    timeout "$TMO" "$@" >"$WORK/last.out" 2>&1 ||
        { echo "failed: $*" >&2; cat "$WORK/last.out" >&2; exit 1; }
}

# load_check NODE FILE: `load customers FILE`, which must write N records.
load_check() {
    quiet "$BS" -d "$1" --json load customers "$2"
    [ "$(jnum written "$WORK/last.out")" = "$N" ] ||
        { echo "load into $1 did not write $N records:" >&2; cat "$WORK/last.out" >&2; exit 1; }
}

# timed_import LABEL NODE FILE: import FILE into NODE, timed (the whole
# process, from just before its start to just after its exit); sets IM_S
# (wall seconds), IM_CPU, IM_PEAK_KB and leaves the
# --json report in $WORK/LABEL.json.  Under CONFLICTS_PROFILE, the import
# runs under the profiler instead.
timed_import() {
    local label=$1 node=$2 file=$3 t0 t1 rc=0
    sync # write back what setup left dirty, so it does not land here
    if [ -n "$PROF" ]; then
        local pre
        if [ "$PROFILER" = perf ]; then
            # shellcheck disable=SC2054 # dwarf,16384 is one argument
            pre=(perf record -F 999 --call-graph dwarf,16384 -o "$PROF/$label.perf.data" --)
        else
            pre=(valgrind --tool=callgrind --callgrind-out-file="$PROF/$label.callgrind.out")
        fi
        t0=$(now)
        timeout "$TMO" "${pre[@]}" "$BS" -d "$node" --json import "$file" \
            >"$WORK/$label.json" 2>"$PROF/$label.$PROFILER.log" || rc=$?
        t1=$(now)
        IM_S=$(elapsed "$t0" "$t1") IM_CPU=- IM_PEAK_KB=0
    else
        RUN_S=0
        run_sampled "$WORK/rss.$label" "$BS" -d "$node" --json import "$file" \
            >"$WORK/$label.json" || rc=$?
        IM_S=$RUN_S IM_CPU=$RUN_CPU
        read -r IM_PEAK_KB _ < <(sed 's/[a-z_]*=//g' "$WORK/rss.$label")
    fi
    [ "$rc" = 0 ] || { echo "import $label exited $rc" >&2; cat "$WORK/$label.json" >&2; exit 1; }
}

# import_check LABEL CHANGES CONFLICTS: what the --json report must say.
import_check() {
    local ch co
    ch=$(jnum changes "$WORK/$1.json") co=$(jnum conflicts "$WORK/$1.json")
    if [ "$ch" != "$2" ] || [ "$co" != "$3" ]; then
        echo "import $1: $ch changes and $co conflicts, expected $2 and $3" >&2
        cat "$WORK/$1.json" >&2
        FAILED=1
    fi
}

# normal_conflicts IN OUT: one canonical line per conflict of a `conflicts
# --all --json` listing, sorted, without the node-local parts (see above).
# Prints "count distinct_ids fields candidate_order_flips".
normal_conflicts() {
    python3 - "$1" "$2" "$FIELD" <<'EOF'
import json, sys
src, dst, field = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src, encoding="utf-8") as f:
    arr = json.load(f)
lines, ids, fields, flips = [], set(), set(), 0
for c in arr:
    c.pop("detected_ms", None)
    cand = c.get("candidates") or []
    key = lambda x: (x.get("origin", ""), x.get("hlc", 0))
    s = sorted(cand, key=key)
    flips += s != cand
    c["candidates"] = s
    ids.add(c.get("conflict"))
    fields.add(c.get("field"))
    lines.append(json.dumps(c, sort_keys=True, separators=(",", ":")))
del arr
lines.sort()
with open(dst, "w", encoding="utf-8") as f:
    for l in lines:
        f.write(l + "\n")
print(len(lines), len(ids), ",".join(sorted(map(str, fields))) or "-", flips)
EOF
}

held_r=() held_ratio_r=() held_cpu_r=() first_r=() free_r=() hub_r=() br_r=() both_r=() ratio_r=() cpu_ratio_r=() raw_r=()
FAILED=0
for run in $(seq 1 "$RUNS"); do
    R=$WORK/run$run
    mkdir "$R"
    HUB=$R/hub BR=$R/branch REF=$R/ref
    hp=$(free_port) bp=$(free_port) rp=$(free_port)
    node_init "$HUB" head hub "$hp"
    node_init "$BR" branch branch "$bp"
    node_init "$REF" ref branch "$rp"
    pair "$HUB" head "$hp" "$BR" branch "$bp"
    pair "$HUB" head "$hp" "$REF" ref "$rp"

    # --- both offices hold the same N records (the hub's) -----------------
    load_check "$HUB" "$DATA"
    quiet "$BS" -d "$HUB" export branch "$R/h0b.bsx"
    quiet "$BS" -d "$HUB" export ref "$R/h0r.bsx"
    timed_import first "$BR" "$R/h0b.bsx"
    first_s=$IM_S
    # N records + the hub's membership changes (branch and ref)
    first_changes=$(jnum changes "$WORK/first.json")
    if [ "${first_changes:-0}" -lt "$N" ] || [ "$(jnum conflicts "$WORK/first.json")" != 0 ]; then
        echo "first import: unexpected report" >&2; cat "$WORK/first.json" >&2; exit 1
    fi
    quiet "$BS" -d "$REF" import "$R/h0r.bsx"
    # acknowledgements back to the hub: nothing is sent twice later
    quiet "$BS" -d "$BR" export head "$R/b0.bsx"
    quiet "$BS" -d "$HUB" import "$R/b0.bsx"
    quiet "$BS" -d "$REF" export head "$R/r0.bsx"
    quiet "$BS" -d "$HUB" import "$R/r0.bsx"
    rm -f "$R"/*0*.bsx

    # --- each office rewrites FIELD of the N records ----------------------
    load_check "$HUB" "$WORK/hub.jsonl"
    load_check "$BR" "$WORK/branch.jsonl"

    # --- exports ----------------------------------------------------------
    sync
    t0=$(now)
    quiet "$BS" -d "$HUB" export branch "$R/hb.bsx"
    t1=$(now)
    quiet "$BS" -d "$BR" export head "$R/bh.bsx"
    t2=$(now)
    quiet "$BS" -d "$HUB" export ref "$R/hr.bsx"
    ex_hub_s=$(elapsed "$t0" "$t1") ex_br_s=$(elapsed "$t1" "$t2")

    # --- imports: conflicted, conflict-free, conflicted --------------------
    timed_import hub "$HUB" "$R/bh.bsx"
    hub_s=$IM_S hub_cpu=$IM_CPU hub_kb=$IM_PEAK_KB
    timed_import free "$REF" "$R/hr.bsx"
    free_s=$IM_S free_cpu=$IM_CPU free_kb=$IM_PEAK_KB
    timed_import branch "$BR" "$R/hb.bsx"
    br_s=$IM_S br_cpu=$IM_CPU br_kb=$IM_PEAK_KB
    import_check hub "$N" "$N"
    import_check free "$N" 0
    import_check branch "$N" "$N"
    fbytes=$(fsize "$R/hb.bsx")

    # --- the same conflicts on both sides ---------------------------------
    dh=$("$BS" -d "$HUB" digest) db=$("$BS" -d "$BR" digest)
    if [ "$dh" != "$db" ]; then
        echo "run $run: digests differ: hub $dh, branch $db" >&2
        FAILED=1
    fi
    timeout "$TMO" "$BS" -d "$HUB" conflicts --all --json >"$R/c.hub.json"
    timeout "$TMO" "$BS" -d "$BR" conflicts --all --json >"$R/c.branch.json"
    read -r hn hids hfields hflips < <(normal_conflicts "$R/c.hub.json" "$R/c.hub.norm")
    read -r bn bids bfields bflips < <(normal_conflicts "$R/c.branch.json" "$R/c.branch.norm")
    same=yes
    if ! cmp -s "$R/c.hub.norm" "$R/c.branch.norm"; then
        same=NO
        FAILED=1
        echo "run $run: the conflicts recorded differ (normalised, first lines of diff):" >&2
        diff "$R/c.hub.norm" "$R/c.branch.norm" | head -6 >&2 || true
    fi
    while read -r side cn cids cfields; do
        if [ "$cn" != "$N" ] || [ "$cids" != "$N" ] || [ "$cfields" != "$FIELD" ]; then
            echo "run $run: $side recorded $cn conflicts ($cids distinct IDs, fields $cfields), expected $N of $FIELD" >&2
            FAILED=1
        fi
    done <<<"hub $hn $hids $hfields
branch $bn $bids $bfields"
    chash=$(sha256sum "$R/c.hub.norm" | cut -c1-16)
    rm -f "$R"/c.*.json "$R"/c.*.norm

    # --- second round: no conflict, into a node that holds N --------------
    # The branch acknowledges what it holds; the hub rewrites FIELD again
    # (it has seen the branch's writes: nothing concurrent) and the branch
    # imports that.  Same shape as ref's import above (N updates of one
    # field), but the receiver's register holds N (resolved) conflicts.
    quiet "$BS" -d "$BR" export head "$R/b1.bsx"
    quiet "$BS" -d "$HUB" import "$R/b1.bsx"
    load_check "$HUB" "$WORK/hub2.jsonl"
    quiet "$BS" -d "$HUB" export branch "$R/hb2.bsx"
    timed_import held "$BR" "$R/hb2.bsx"
    held_s=$IM_S held_cpu=$IM_CPU
    import_check held "$N" 0

    raw_lmdb "$DATA" "$WORK/raw" "$WORK/raw.out"

    first=$(rate "$first_changes" "$first_s")
    free=$(rate "$N" "$free_s") hubr=$(rate "$N" "$hub_s") brr=$(rate "$N" "$br_s")
    held=$(rate "$N" "$held_s")
    both=$(awk -v n="$N" -v a="$hub_s" -v b="$br_s" 'BEGIN { printf "%.0f", (a + b > 0 ? 2 * n / (a + b) : 0) }')
    q=$(ratio "$both" "$free")
    if [ -n "$PROF" ]; then
        qc=-
    else
        qc=$(awk -v f="$free_cpu" -v a="$hub_cpu" -v b="$br_cpu" \
            'BEGIN { printf "%.3f", (a + b > 0 ? 2 * f / (a + b) : 0) }')
    fi
    if [ -n "$PROF" ]; then
        hqc=-
    else
        hqc=$(awk -v f="$free_cpu" -v h="$held_cpu" 'BEGIN { printf "%.3f", (h > 0 ? f / h : 0) }')
    fi
    held_r+=("$held") held_ratio_r+=("$(ratio "$held" "$free")") held_cpu_r+=("$hqc")
    first_r+=("$first") free_r+=("$free") hub_r+=("$hubr") br_r+=("$brr")
    both_r+=("$both") ratio_r+=("$q") cpu_ratio_r+=("$qc") raw_r+=("$RAW_RATE")

    echo "run $run/$RUNS: N=$N records, field $FIELD rewritten on both sides, file $(mib "$fbytes")" \
        "(hub -> branch), exports $ex_hub_s s / $ex_br_s s"
    [ -n "$PROF" ] && echo "  (under $PROFILER: the rates below are not figures; output in $PROF)"
    printf '  first exchange, new records : %10s records/s  (%s s, %s changes)\n' "$first" "$first_s" "$first_changes"
    printf '  conflict-free import (ref)  : %10s records/s  (%s s, CPU %s s, peak RssAnon %s MiB)\n' \
        "$free" "$free_s" "$free_cpu" "$(kib2mib "$free_kb")"
    printf '  conflicted import, hub      : %10s records/s  (%s s, CPU %s s, peak RssAnon %s MiB)\n' \
        "$hubr" "$hub_s" "$hub_cpu" "$(kib2mib "$hub_kb")"
    printf '  conflicted import, branch   : %10s records/s  (%s s, CPU %s s, peak RssAnon %s MiB)\n' \
        "$brr" "$br_s" "$br_cpu" "$(kib2mib "$br_kb")"
    printf '  conflicted, both sides      : %10s records/s  ratio to conflict-free %s (target >= 0.5), in CPU s %s\n' \
        "$both" "$q" "$qc"
    printf '  2nd round, no conflict, into a node holding N: %s records/s  (%s s, CPU %s s)  ratio to conflict-free %s, in CPU s %s\n' \
        "$held" "$held_s" "$held_cpu" "${held_ratio_r[-1]}" "$hqc"
    printf '  raw LMDB                    : %10s records/s  (%s s); conflict-free/raw %s, conflicted/raw %s\n' \
        "$RAW_RATE" "$RAW_S" "$(ratio "$free" "$RAW_RATE")" "$(ratio "$both" "$RAW_RATE")"
    printf '  conflicts: hub %s, branch %s (distinct IDs %s / %s), normalised listings %s (sha256 %s);' \
        "$hn" "$bn" "$hids" "$bids" "$([ "$same" = yes ] && echo equal || echo DIFFER)" "$chash"
    printf ' candidates listed incoming-first: %s / %s differ in order only\n' "$hflips" "$bflips"
    printf '  stores: hub %s, branch %s, ref %s; digests %s\n' \
        "$(mib "$(fsize "$HUB/store/data.mdb")")" "$(mib "$(fsize "$BR/store/data.mdb")")" \
        "$(mib "$(fsize "$REF/store/data.mdb")")" "$([ "$dh" = "$db" ] && echo equal || echo DIFFER)"
    rm -rf "$R"
done

if [ "$RUNS" -gt 1 ]; then
    echo "median of $RUNS runs: N=$N"
    printf '  first exchange, new records : %10s records/s\n' "$(median "${first_r[@]}")"
    printf '  conflict-free import (ref)  : %10s records/s\n' "$(median "${free_r[@]}")"
    printf '  conflicted import, hub      : %10s records/s\n' "$(median "${hub_r[@]}")"
    printf '  conflicted import, branch   : %10s records/s\n' "$(median "${br_r[@]}")"
    printf '  conflicted, both sides      : %10s records/s  ratio %s (median of the per-run ratios; runs %s), in CPU s %s\n' \
        "$(median "${both_r[@]}")" "$(median "${ratio_r[@]}")" "${ratio_r[*]}" \
        "$(if [ -n "$PROF" ]; then echo -; else median "${cpu_ratio_r[@]}"; fi)"
    printf '  2nd round, no conflict, into a node holding N: %s records/s  ratio %s, in CPU s %s\n' \
        "$(median "${held_r[@]}")" "$(median "${held_ratio_r[@]}")" \
        "$(if [ -n "$PROF" ]; then echo -; else median "${held_cpu_r[@]}"; fi)"
    printf '  raw LMDB                    : %10s records/s\n' "$(median "${raw_r[@]}")"
fi
[ -n "$PROF" ] && echo "(summary of runs under $PROFILER: not figures)"
printf 'summary: N=%s conflicted %s records/s, conflict-free %s records/s, ratio %s (target >= 0.5), conflicts %s\n' \
    "$N" "$(median "${both_r[@]}")" "$(median "${free_r[@]}")" "$(median "${ratio_r[@]}")" \
    "$([ "$FAILED" = 0 ] && echo "N on each side, identical" || echo "CHECK FAILED")"
exit "$FAILED"
